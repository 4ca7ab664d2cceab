// Who is connected now: the Connected cell of each row, its tooltip (the account's open
// sessions, read when first shown), and the live session changes that keep the cells current.

import { exactTime, relativeTime } from "./format.js";
import { $, api, state } from "./page.js";
import { ACCOUNT_SESSIONS } from "./queries.js";

const REASONS = {
  MAPI_EWS_DISABLED: "MAPI/EWS was disabled",
  DISCONNECTED_BY_ADMIN: "disconnected by an administrator",
  ACCOUNT_REMOVED: "the account was removed",
  ENDED_BY_GATEWAY: "the client signed off",
  EXPIRED: "the gateway stopped confirming it",
};

export function reasonText(reason) {
  return REASONS[reason] ?? reason;
}

/** The Connected cell's content for an account: a badge with its open sessions, or a dash. */
export function connectedCell(account) {
  const count = account.activeSessionCount ?? 0;
  if (!count) {
    const none = document.createElement("span");
    none.className = "not-connected";
    none.textContent = "—";
    none.title = "No open MAPI/EWS session";
    none.setAttribute("aria-label", "Not connected");
    return [none];
  }
  const badge = document.createElement("button");
  badge.type = "button";
  badge.className = "sessions";
  badge.textContent = count === 1 ? "1 session" : `${count} sessions`;
  badge.setAttribute("aria-describedby", "session-tip");
  badge.setAttribute("aria-label", `${account.emailAddress}: ${badge.textContent} open; details`);
  const show = () => showSessions(badge, account);
  badge.addEventListener("mouseenter", show);
  badge.addEventListener("focus", show);
  badge.addEventListener("click", show);
  badge.addEventListener("mouseleave", hideSessions);
  badge.addEventListener("blur", hideSessions);
  badge.addEventListener("keydown", (event) => {
    if (event.key === "Escape") hideSessions();
  });
  return [badge];
}

let tipSerial = 0;

async function showSessions(badge, account) {
  const serial = ++tipSerial;
  const tip = $("session-tip");
  tip.replaceChildren(document.createTextNode("Loading sessions…"));
  place(tip, badge);
  let connection;
  try {
    const data = await api.request(ACCOUNT_SESSIONS, { domain: state.domain, username: account.username });
    connection = data.mapiEwsSessions;
  } catch {
    if (serial === tipSerial) tip.textContent = "The sessions could not be read.";
    return;
  }
  if (serial !== tipSerial || tip.hidden) return;
  const sessions = connection.edges.map((edge) => edge.node);
  const heading = document.createElement("strong");
  heading.textContent = sessions.length
    ? `${account.username}: ${connection.totalCount} open`
    : `${account.username}: no open session now`;
  const list = document.createElement("ul");
  for (const session of sessions) {
    const li = document.createElement("li");
    const protocol = document.createElement("span");
    protocol.className = `protocol ${session.protocol.toLowerCase()}`;
    protocol.textContent = session.protocol;
    const client = session.clientName ?? "unnamed client";
    const since = relativeTime(session.startedAt);
    const where = session.clientAddress ? ` from ${session.clientAddress}` : "";
    li.title = exactTime(session.startedAt);
    li.append(protocol, ` ${client}${where}, since ${since}`);
    list.append(li);
  }
  tip.replaceChildren(heading, list);
  place(tip, badge);
}

function place(tip, badge) {
  tip.hidden = false;
  const box = badge.getBoundingClientRect();
  // Below the badge, or above it where the screen has no room below.
  const below = box.bottom + 6 + tip.offsetHeight <= window.innerHeight || box.top < tip.offsetHeight + 6;
  tip.style.top = `${window.scrollY + (below ? box.bottom + 6 : box.top - 6 - tip.offsetHeight)}px`;
  tip.style.left = `${Math.max(8, window.scrollX + box.right - tip.offsetWidth)}px`;
}

export function hideSessions() {
  tipSerial++;
  $("session-tip").hidden = true;
}

/** A session opened or ended: the account's row shows its count as the event carries it. */
export function sessionChanged(change) {
  const account = change.session.account;
  if (!account) return;
  const row = state.rows.find((r) => r.username === account.username);
  const tr = $("rows").querySelector(`tr[data-username="${CSS.escape(account.username)}"]`);
  if (!row || !tr) return;
  row.activeSessionCount = account.activeSessionCount;
  tr.querySelector(".connected").replaceChildren(...connectedCell(row));
}
