"""What the migrations leave behind, where a migration had to do by hand what Tortoise does not:
migration 0012 changes protocol_session's foreign key to its account (ON DELETE SET NULL)."""

from starlette.applications import Starlette

from api import db

SESSION_INDEXES = {
    ("gateway_id", "session_id"): True,
    ("account_id", "expires_at"): False,
    ("domain_id", "started_at", "id"): False,
    ("expires_at",): False,
}


async def test_protocol_sessions_keep_their_indexes_and_outlive_their_account(
    app: Starlette,
) -> None:
    conn = db.connection()
    if db.is_sqlite(conn):
        # Tortoise remakes the table on SQLite to change a foreign key: the indexes are made again.
        indexes = await conn.execute_query_dict("PRAGMA index_list('protocol_session')")
        found = {}
        for index in indexes:
            columns = await conn.execute_query_dict(f"PRAGMA index_info('{index['name']}')")
            found[tuple(c["name"] for c in columns)] = bool(index["unique"])
        keys = await conn.execute_query_dict("PRAGMA foreign_key_list('protocol_session')")
        on_delete = {k["from"]: k["on_delete"] for k in keys}
    else:
        rows = await conn.execute_query_dict(
            "SELECT i.indisunique AS uniq, array_agg(a.attname ORDER BY k.n) AS cols "
            "FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = 'protocol_session'::regclass AND NOT i.indisprimary "
            "GROUP BY i.indexrelid, i.indisunique"
        )
        found = {tuple(r["cols"]): bool(r["uniq"]) for r in rows}
        keys = await conn.execute_query_dict(
            "SELECT a.attname AS col, c.confdeltype::text AS action FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
            "WHERE c.conrelid = 'protocol_session'::regclass AND c.contype = 'f'"
        )
        actions = {"n": "SET NULL", "c": "CASCADE"}
        on_delete = {k["col"]: actions.get(k["action"], k["action"]) for k in keys}

    assert found == SESSION_INDEXES
    assert on_delete == {
        "account_id": "SET NULL",
        "domain_id": "CASCADE",
        "gateway_id": "CASCADE",
    }


async def test_an_external_id_is_unique_in_its_domain_and_no_username_lookup_can_use_it(
    app: Starlette,
) -> None:
    conn = db.connection()
    if db.is_sqlite(conn):
        rows = await conn.execute_query_dict(
            "SELECT sql FROM sqlite_master WHERE name = 'account_external_id'"
        )
        definition = rows[0]["sql"]
    else:
        rows = await conn.execute_query_dict(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'account_external_id'"
        )
        definition = rows[0]["indexdef"]

    assert "UNIQUE" in definition.upper()
    assert "WHERE" in definition.upper() and "external_id IS NOT NULL" in definition
