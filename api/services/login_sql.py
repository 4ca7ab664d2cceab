"""The SQL of a gateway's report, every statement that writes one, each rule written once.

Who runs them: api/services/login_store.py (a single report; SQLite's reports) and
api/services/login_batches.py (PostgreSQL's batch). The rules, each one template below, filled in
with the placeholders of the statement that uses it:

- FORWARD: the last-login columns only move forward (the same text in both dialects);
- _PERMITTED and _REFUSAL: whether a login may go through, and if not why: MAPI/EWS on, the
  protocol among the account's, the client let in by the domain's policy ({ok}: the process
  decided that, api/services/access_policy.py);
- _SAME_LOGIN and _WINDOW: which earlier event a report repeats (the coalescing key and window),
  and _BUMP: how a repeat is counted on it;
- _INSERT_EVENT: a new event's columns;
- _SESSION_UPSERT: an allowed report with a session id opens that session or refreshes it,
  keeping its start when the same account's open session is reported again;
- _OPEN_COUNT: the account's open sessions (api/services/connected.py says what "open" is).

PostgreSQL writes a report, or a batch, in one statement: one round trip, nothing read first.
SQLite has no data-modifying WITH, so its twins (SQLITE_*) are the same parts as statements of
their own, run in one short transaction, which holds the database's write lock from its first.
Everything here is built from constants; every value is a bound parameter.
"""

from __future__ import annotations

from api.services.connected import open_sql
from api.services.event_payloads import AccountRow

# A session's columns, in the order statements return them (a row "as it was" is read back
# through these names, prefixed with "previous_").
SESSION_COLUMNS = (
    "id",
    "gateway_id",
    "session_id",
    "domain_id",
    "account_id",
    "username",
    "protocol",
    "client_address",
    "client_name",
    "started_at",
    "last_seen_at",
    "expires_at",
    "end_reason",
    "ended_at",
)
# The columns an account's events read, in the order of their row type.
ACCOUNT_COLUMNS = AccountRow._fields

# Forward only: each column takes the report's time only when that is newer. {t}: the newest
# report's time, {p}: its protocol; {tm}, {te}: the newest MAPI and EWS report's time, or NULL.
# Every CASE reads the row as it was before the UPDATE, and PostgreSQL re-evaluates it against
# the latest version when reports race for the row, so a late or racing report never moves a
# time back.
FORWARD = """
    last_login = CASE WHEN last_login IS NULL OR last_login < {t} THEN {t} ELSE last_login END,
    last_login_protocol = CASE WHEN last_login IS NULL OR last_login < {t}
        THEN {p} ELSE last_login_protocol END,
    last_mapi_login = CASE WHEN {tm} IS NOT NULL
        AND (last_mapi_login IS NULL OR last_mapi_login < {tm}) THEN {tm} ELSE last_mapi_login END,
    last_ews_login = CASE WHEN {te} IS NOT NULL
        AND (last_ews_login IS NULL OR last_ews_login < {te}) THEN {te} ELSE last_ews_login END
"""
# The protocol's bit of an account's mapi_ews_protocols (api.models.PROTOCOL_BITS).
_BIT = "(CASE {p} WHEN 'MAPI' THEN 1 ELSE 2 END)"
# A login may go through when the account ({en}: MAPI/EWS on, {pr}: its protocols) may use the
# protocol {p} and the domain's policy lets the client in ({ok}); otherwise the first reason
# that applies (api.models.LoginRefusal), NULL when none does.
_PERMITTED = "({en} AND ({pr} & " + _BIT + ") <> 0 AND {ok})"
_REFUSAL = (
    "CASE WHEN NOT {en} THEN 'MAPI_EWS_DISABLED' WHEN ({pr} & "
    + _BIT
    + ") = 0 THEN 'PROTOCOL_NOT_ALLOWED' WHEN NOT {ok} THEN 'CLIENT_NOT_ALLOWED' END"
)
# The same login as an earlier event {e}: same account, protocol, client and decision. {same}
# is the dialect's null-safe equality (PostgreSQL: IS NOT DISTINCT FROM; SQLite: IS).
_SAME_LOGIN = (
    "{e}.account_id = {a} AND {e}.protocol = {p} AND {e}.client_address {same} {c} "
    "AND {e}.client_name {same} {n} AND {e}.allowed = {allowed} AND {e}.refusal {same} {r}"
)
# Within the coalescing window: first reported less than the window before the report, and not
# after it. On PostgreSQL the bounds also prune login_event's partitions to the window's.
_WINDOW = "{e}.occurred_at > {since} AND {e}.occurred_at <= {t}"
# A repeat counted on its event: {reports} more, the last one at {last} unless it was later.
_BUMP = (
    "count = {e}.count + {reports}, "
    "last_occurred_at = {greatest}(COALESCE({e}.last_occurred_at, {e}.occurred_at), {last})"
)
_INSERT_EVENT = (
    "INSERT INTO login_event (domain_id, account_id, username, protocol, occurred_at, "
    "client_address, client_name, allowed, refusal, count, last_occurred_at) "
)
_SESSION_UPSERT = (
    "INSERT INTO protocol_session (gateway_id, session_id, domain_id, account_id, username, "
    "protocol, client_address, client_name, started_at, last_seen_at, expires_at) {rows} "
    "ON CONFLICT (gateway_id, session_id) DO UPDATE SET "
    "started_at = CASE WHEN protocol_session.account_id = EXCLUDED.account_id AND "
    + open_sql("{now}", "protocol_session")
    + " THEN protocol_session.started_at ELSE EXCLUDED.started_at END, "
    "domain_id = EXCLUDED.domain_id, account_id = EXCLUDED.account_id, "
    "username = EXCLUDED.username, protocol = EXCLUDED.protocol, "
    "client_address = EXCLUDED.client_address, client_name = EXCLUDED.client_name, "
    "last_seen_at = EXCLUDED.last_seen_at, expires_at = EXCLUDED.expires_at, "
    "end_reason = NULL, ended_at = NULL "
)
_OPEN_COUNT = (
    "(SELECT count(*) FROM protocol_session o WHERE o.account_id = {a} AND "
    + open_sql("{now}", "o")
    + ")"
)


def _fill(template: str, **parts: str) -> str:
    """A template with some of its placeholders filled (the others stay for a later fill)."""
    return template.format_map(_Partial(parts))


class _Partial(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


# --- A single report -------------------------------------------------------------------------
# {d} domain, {u} username, {t} time, {p} protocol, {c} client address, {n} client name,
# {now}, {since} the window's start; with a session: {g} gateway, {s} session id, {exp}.

# A single report's newest MAPI and EWS times: its own, if of that protocol.
_IF_MAPI = "CASE WHEN {p} = 'MAPI' THEN {t} END"
_IF_EWS = "CASE WHEN {p} = 'EWS' THEN {t} END"
_WHERE_NAMED = "domain_id = (SELECT id FROM domain WHERE name = {d}) AND username = {u}"
_UPDATE_ONE = (
    "UPDATE account SET "
    + _fill(FORWARD, tm=_IF_MAPI, te=_IF_EWS)
    + " WHERE "
    + _WHERE_NAMED
    + " AND "
    + _fill(_PERMITTED, en="mapi_ews_enabled", pr="mapi_ews_protocols")
    + " RETURNING *"
)
_PG_ONE = {
    "d": "$1",
    "u": "$2",
    "t": "$3::timestamptz",
    "p": "$4::varchar",
    "c": "$5::varchar",
    "n": "$6::varchar",
    "now": "$7::timestamptz",
    "since": "$8::timestamptz",
    "ok": "$9::bool",
    "g": "$10::int",
    "s": "$11::varchar",
    "exp": "$12::timestamptz",
}
_ALLOWED = "EXISTS (SELECT 1 FROM changed)"
# Why the report was refused, read from `target` (NULL when `changed` took it).
_REFUSED_ONE = (
    "CASE WHEN "
    + _ALLOWED
    + " THEN NULL ELSE COALESCE("
    + _fill(_REFUSAL, en="target.mapi_ews_enabled", pr="target.mapi_ews_protocols")
    + ", 'MAPI_EWS_DISABLED') END"
)
# `changed` is the allowed case; otherwise `target` reads the account as it is, and the event is
# stored either way, with `allowed` saying which. No row at all: no such account. `recent` is the
# event this report repeats: `bumped` counts the report on it, under its row lock, and only
# without one is a row inserted. `open_before` counts the account's open sessions before it.
_PG_LOGGED = (
    "WITH changed AS (" + _UPDATE_ONE + "), "
    "target AS (SELECT * FROM changed UNION ALL SELECT * FROM account WHERE "
    + _WHERE_NAMED
    + " AND NOT EXISTS (SELECT 1 FROM changed)), "
    "recent AS (SELECT e.id, e.occurred_at FROM login_event e, target WHERE "
    + _fill(
        _SAME_LOGIN,
        e="e",
        a="target.id",
        same="IS NOT DISTINCT FROM",
        allowed=_ALLOWED,
        r=_REFUSED_ONE,
    )
    + " AND "
    + _fill(_WINDOW, e="e")
    + " ORDER BY e.occurred_at DESC LIMIT 1), "
    "bumped AS (UPDATE login_event e SET "
    + _fill(_BUMP, e="e", reports="1", greatest="GREATEST", last="{t}")
    + " FROM recent WHERE e.id = recent.id AND e.occurred_at = recent.occurred_at AND "
    + _fill(_WINDOW, e="e")
    + " RETURNING e.id, e.allowed, e.refusal, e.count, e.occurred_at, e.last_occurred_at), "
    "inserted AS ("
    + _INSERT_EVENT
    + "SELECT domain_id, id, username, {p}, {t}, {c}, {n}, "
    + _ALLOWED
    + ", "
    + _REFUSED_ONE
    + ", 1, {t} FROM target WHERE NOT EXISTS (SELECT 1 FROM bumped) "
    "RETURNING id, allowed, refusal, count, occurred_at, last_occurred_at), "
    "logged AS (SELECT * FROM bumped UNION ALL SELECT * FROM inserted)"
)
_PG_RESULT = (
    "SELECT target.*, logged.id AS event_id, logged.allowed AS event_allowed, "
    "logged.refusal AS event_refusal, "
    "logged.count AS event_count, logged.occurred_at AS event_first, "
    "logged.last_occurred_at AS event_last, "
    + _fill(_OPEN_COUNT, a="target.id")
    + " AS open_before"
)
PG_REPORT = (_PG_LOGGED + " " + _PG_RESULT + " FROM target CROSS JOIN logged").format(**_PG_ONE)
"""One report, $1-$9 as _PG_ONE names them."""
# With a session id, the same statement opens the session if the report is allowed, or
# refreshes it; `previous` is that id's row as it was (the statement's snapshot), so the caller
# can tell a new session from a refreshed one.
PG_SESSION_REPORT = (
    _PG_LOGGED
    + ", previous AS (SELECT * FROM protocol_session WHERE gateway_id = {g} AND session_id = {s}), "
    "opened AS ("
    + _fill(
        _SESSION_UPSERT,
        rows="SELECT {g}, {s}, domain_id, id, username, {p}, {c}, {n}, {t}, {now}, {exp} "
        "FROM changed",
    )
    + "RETURNING id, started_at) "
    + _PG_RESULT
    + ", opened.id AS opened_id, opened.started_at AS opened_started_at, "
    + ", ".join(f"previous.{column} AS previous_{column}" for column in SESSION_COLUMNS)
    + " FROM target CROSS JOIN logged LEFT JOIN opened ON true LEFT JOIN previous ON true"
).format(**_PG_ONE)
"""One report with a session: $1-$12 as _PG_ONE names them."""

# SQLite's twins: ?1 domain, ?2 username, ?3 time, ?4 protocol, ?5 now, ?6 the client let in
# (the allowed UPDATE).
_SQLITE_ONE = {"d": "?1", "u": "?2", "t": "?3", "p": "?4", "now": "?5", "ok": "?6"}
SQLITE_ALLOWED = (
    _UPDATE_ONE + ", " + _fill(_OPEN_COUNT, a="account.id") + " AS open_before"
).format(**_SQLITE_ONE)
"""The allowed case's UPDATE, counting the account's open sessions as it returns the row."""
SQLITE_RECENT = (
    "SELECT id, count, occurred_at, last_occurred_at FROM login_event e WHERE "
    + _fill(_SAME_LOGIN, e="e", same="IS")
    + " AND "
    + _WINDOW
    + " ORDER BY e.occurred_at DESC LIMIT 1"
).format(e="e", a="?1", p="?2", c="?3", n="?4", allowed="?5", since="?6", t="?7", r="?8")
"""The event a report repeats: account, protocol, client address and name, allowed, the
window's start, the report's time and why it was refused."""
SQLITE_BUMP = (
    "UPDATE login_event AS e SET "
    + _BUMP.format(e="e", reports="1", greatest="max", last="?2")
    + " WHERE e.id = ?1 RETURNING count, last_occurred_at"
)
"""A repeat counted on event ?1, reported at ?2."""
SQLITE_INSERT_EVENT = _INSERT_EVENT + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?) RETURNING id"
"""A new event: domain, account, username, protocol, time, client address and name, allowed,
why refused, and the time again (its last report)."""
SQLITE_SESSION = (
    _fill(_SESSION_UPSERT, rows="VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", now="?10")
    + "RETURNING id, started_at"
)
"""An allowed report's session opened or refreshed: gateway, session id, domain, account,
username, protocol, client address and name, time, now, expiry."""

# --- A batch (PostgreSQL) --------------------------------------------------------------------
# $1: the reports, as JSON (one text to send, where two dozen arrays cost the driver a check of
# every element): each one's domain, username, time, protocol, and whether the domain's policy
# lets its client in. The statement locks the named
# accounts in id order (FOR NO KEY UPDATE, as a single report's UPDATE locks its one row, so
# batches naming the same accounts wait for each other and never deadlock) and moves each
# allowed account's last-login columns forward to its newest reports.
_BATCH_ACCOUNTS = (
    "r AS (SELECT * FROM json_to_recordset($1::json) "
    "AS r(d varchar, u varchar, t timestamptz, p varchar, ok bool)), "
    "named AS (SELECT a.id, a.username, dm.name AS d, a.mapi_ews_enabled AS en, "
    "a.mapi_ews_protocols AS pr FROM account a "
    "JOIN domain dm ON dm.id = a.domain_id "
    "JOIN (SELECT DISTINCT d, u FROM r) x ON dm.name = x.d AND a.username = x.u "
    "ORDER BY a.id FOR NO KEY UPDATE OF a), "
    # Per account: its newest allowed report, and its newest allowed of each protocol.
    "newest AS (SELECT named.id AS a, named.d, max(r.t) AS t, "
    "(array_agg(r.p ORDER BY r.t DESC))[1] AS p, "
    "max(r.t) FILTER (WHERE r.p = 'MAPI') AS tm, max(r.t) FILTER (WHERE r.p = 'EWS') AS te "
    "FROM r JOIN named ON named.d = r.d AND named.username = r.u WHERE "
    + _PERMITTED.format(en="named.en", pr="named.pr", p="r.p", ok="r.ok")
    + " GROUP BY named.id, named.d), "
    "changed AS (UPDATE account SET "
    + FORWARD.format(t="newest.t", p="newest.p", tm="newest.tm", te="newest.te")
    + " FROM newest WHERE account.id = newest.a AND account.mapi_ews_enabled "
    "RETURNING account.*, newest.d), "
    # Every named account as the batch leaves it, with MAPI/EWS and its protocols as the
    # statement locked them (each report's decision; the UPDATE leaves both as they were, so a
    # changed row carries them: joining `named` again cost a batch its size squared). Only the
    # accounts left unchanged are read again: the filter runs on `named`, before the lookups.
    "accounts AS (SELECT changed.*, changed.mapi_ews_enabled AS en, "
    "changed.mapi_ews_protocols AS pr FROM changed UNION ALL "
    "SELECT a.*, left_alone.d, left_alone.en, left_alone.pr FROM account a JOIN (SELECT * "
    "FROM named WHERE id NOT IN (SELECT id FROM changed)) left_alone ON left_alone.id = a.id), "
)
# $2: the groups, as JSON (the batch's repeats of one login within one window, Python's work),
# $3: the window; $4, $5: the batch's whole window. `recent` is the event a login's first
# group repeats, as for one report; the batch's bounds on the table itself keep the lookup and
# the UPDATE to the window's partitions.
_BATCH_SAME = {
    "a": "g.account_id",
    "p": "g.p",
    "c": "g.c",
    "n": "g.n",
    "allowed": "g.allowed",
    "r": "g.refusal",
}
_GROUP_DECISION = {"en": "accounts.en", "pr": "accounts.pr", "p": "g.p", "ok": "g.ok"}
_BATCH_EVENTS = (
    "g AS (SELECT g.*, accounts.id AS account_id, accounts.domain_id, "
    + _PERMITTED.format(**_GROUP_DECISION)
    + " AS allowed, "
    + _REFUSAL.format(**_GROUP_DECISION)
    + " AS refusal FROM json_to_recordset($2::json) AS g(k int, d varchar, u varchar, "
    "p varchar, c varchar, n varchar, ok bool, first timestamptz, last timestamptz, "
    "reports int, repeats bool) "
    "JOIN accounts ON accounts.d = g.d AND accounts.username = g.u), "
    "recent AS (SELECT DISTINCT ON (g.k) g.k, g.reports, g.last, g.refusal, e.id, e.occurred_at, "
    "e.count AS count_before, COALESCE(e.last_occurred_at, e.occurred_at) AS last_before "
    "FROM g JOIN login_event e ON "
    + _SAME_LOGIN.format(e="e", same="IS NOT DISTINCT FROM", **_BATCH_SAME)
    + " AND g.repeats AND "
    + _WINDOW.format(e="e", since="g.first - $3::interval", t="g.first")
    + " AND "
    + _WINDOW.format(e="e", since="$4", t="$5")
    + " ORDER BY g.k, e.occurred_at DESC), "
    "bumped AS (UPDATE login_event e SET "
    + _BUMP.format(e="e", reports="recent.reports", greatest="GREATEST", last="recent.last")
    + " FROM recent WHERE e.id = recent.id AND e.occurred_at = recent.occurred_at AND "
    + _WINDOW.format(e="e", since="$4", t="$5")
    + " RETURNING recent.k, e.id, e.occurred_at, recent.count_before, recent.last_before, "
    "recent.refusal), "
    "inserted AS ("
    + _INSERT_EVENT
    + "SELECT domain_id, account_id, u, p, first, c, n, allowed, refusal, reports, last FROM g "
    "WHERE g.k NOT IN (SELECT k FROM bumped) ORDER BY g.k "
    "RETURNING id, account_id, protocol, client_address, client_name, allowed, refusal, "
    "occurred_at), "
    # Each group's event and why its reports were refused. A bumped event names its group (k);
    # a new one names its login and first time instead, which Python maps to its group: joining
    # the groups again here ran a scan of them per new event (a batch's size squared).
    "logged AS (SELECT k, id, occurred_at, count_before, last_before, refusal, "
    "NULL::int AS account_id, NULL::varchar AS p, NULL::varchar AS c, NULL::varchar AS n "
    "FROM bumped UNION ALL SELECT NULL, i.id, i.occurred_at, 0, NULL, i.refusal, i.account_id, "
    "i.protocol, i.client_address, i.client_name FROM inserted i), "
)
# $6: the gateway; $7: the sessions the reports name, each id once, as JSON; $8: now; $9: when
# they expire. Only the allowed ones open (or refresh) a session; `previous` is each id's row as
# it was, so a new session is told from a refreshed one.
_BATCH_SESSIONS = (
    "s AS (SELECT s.*, accounts.id AS account_id, accounts.domain_id FROM "
    "json_to_recordset($7::json) AS s(session_id varchar, d varchar, u varchar, p varchar, "
    "c varchar, n varchar, ok bool, t timestamptz) "
    "JOIN accounts ON accounts.d = s.d AND accounts.username = s.u AND "
    + _PERMITTED.format(en="accounts.en", pr="accounts.pr", p="s.p", ok="s.ok")
    + " "
    "WHERE $6::int IS NOT NULL), "
    "previous AS (SELECT o.* FROM protocol_session o JOIN s ON o.session_id = s.session_id "
    "WHERE o.gateway_id = $6), "
    "opened AS ("
    + _SESSION_UPSERT.format(
        rows="SELECT $6, session_id, domain_id, account_id, u, p, c, n, t, $8, $9 FROM s "
        "ORDER BY session_id",
        now="$8",
    )
    + "RETURNING *) "
)
# The answer, a row per account, event group and session, as JSON; an account carries what its
# events' snapshots read, not the rest.
_BATCH_ANSWER = (
    "SELECT 'account' AS kind, to_jsonb(x) AS data FROM (SELECT "
    + ", ".join(f"accounts.{column}" for column in ACCOUNT_COLUMNS)
    + ", accounts.d, "
    + _OPEN_COUNT.format(a="accounts.id", now="$8")
    + " AS open_before FROM accounts) x "
    "UNION ALL SELECT 'event', to_jsonb(logged) FROM logged "
    "UNION ALL SELECT 'session', to_jsonb(y) FROM (SELECT opened.*, "
    + ", ".join(f"previous.{column} AS previous_{column}" for column in SESSION_COLUMNS)
    + " FROM opened LEFT JOIN previous ON previous.session_id = opened.session_id) y"
)
PG_BATCH = "WITH " + _BATCH_ACCOUNTS + _BATCH_EVENTS + _BATCH_SESSIONS + _BATCH_ANSWER
"""A batch, whatever its size: $1-$9 as the comments above name them."""
