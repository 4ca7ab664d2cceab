// Live updates: the page's subscriptions (logins, changes, sessions, usage), the Last Login cells and rows they change, the
// "Live activity" list and the connection's status.

import { exactTime, lastLoginCell, refusalText, relativeTime } from "./format.js";
import { LiveConnection } from "./live.js";
import { $, api, state, throttled } from "./page.js";
import { ACCOUNT_CHANGES, LOGIN_UPDATES, SESSION_CHANGES, USAGE_UPDATES } from "./queries.js";
import { reasonText, sessionChanged } from "./sessions.js";
import { load, reloadSoon, showUsage } from "./table.js";

const ACTIVITY_ITEMS = 20;

let countdown = null;
function liveStatus(status) {
  const element = $("live-status");
  clearInterval(countdown);
  element.dataset.state = status.state;
  if (status.state === "live") element.textContent = "Live";
  else if (status.state === "connecting") element.textContent = "Connecting…";
  else if (status.state === "reconnecting") element.textContent = "Reconnecting…";
  else {
    const retryAt = Date.now() + status.retryInMs;
    const tell = () => {
      const seconds = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
      element.textContent =
        status.attempt >= 3
          ? `Live updates are unavailable: the server cannot be reached. Retrying in ${seconds} s.`
          : `Live updates interrupted. Reconnecting in ${seconds} s…`;
    };
    tell();
    countdown = setInterval(tell, 1000);
  }
}

/** Subscribes to the domain's logins and changes; `onRightsLost` runs when the server refuses
 * a subscription for the viewer's rights (it was demoted, say). */
export function startLive(onRightsLost) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  state.live = new LiveConnection({
    url: `${scheme}//${location.host}/graphql`,
    connectionParams: async () => ({ Authorization: `Bearer ${await api.accessToken()}` }),
    onStatus: liveStatus,
    onReconnected: load, // events may have been missed while the connection was down
    onForbidden: () => api.refresh(),
  });
  subscribe(LOGIN_UPDATES, (data) => loggedIn(data.mapiEwsLoginUpdates), onRightsLost);
  subscribe(ACCOUNT_CHANGES, (data) => changed(data.mapiEwsAccountChanges), onRightsLost);
  subscribe(SESSION_CHANGES, (data) => sessionMoved(data.mapiEwsSessionChanges), onRightsLost);
  // The allowance too: a system administrator may change the limit while this tab is open.
  subscribe(USAGE_UPDATES, (data) => showUsage(data.mapiEwsUsageUpdates), onRightsLost);
}

function subscribe(query, next, onRightsLost) {
  const live = state.live;
  const again = (errors) => {
    if (state.live !== live) return;
    const code = Array.isArray(errors) ? errors[0]?.extensions?.code : null;
    if (code === "FORBIDDEN" || code === "UNAUTHENTICATED") {
      // The sign-in no longer grants this (the account was demoted, say): ask again who we are.
      onRightsLost();
      return;
    }
    // Throttled (the budget of query cost is short): wait as long as the server says. Else the
    // server ended it (this page fell behind, say). Either way, start over and catch up.
    const seconds = code === "THROTTLED" ? (errors[0].extensions.retryAfter ?? 1) : 1;
    if (code === "THROTTLED") throttled(seconds);
    setTimeout(() => {
      if (code === "THROTTLED") throttled(0);
      if (state.live === live) {
        subscribe(query, next, onRightsLost);
        load();
      }
    }, seconds * 1000);
  };
  state.stopSubscriptions.push(
    live.subscribe(query, { domain: state.domain }, { next, error: again, complete: again }),
  );
}

export function stopLive() {
  for (const stop of state.stopSubscriptions) stop();
  state.stopSubscriptions = [];
  state.live?.close();
  state.live = null;
  clearInterval(countdown);
  $("live-status").textContent = "";
}

function loggedIn(event) {
  const text = event.allowed
    ? `${event.username} signed in over ${event.protocol}`
    : `${event.username} was refused over ${event.protocol}: ${refusalText(event.refusal)}`;
  // A repeated login comes as its event with the new count: this report is its latest.
  const li = activity(event.lastOccurredAt, text, event.allowed ? "login" : "refused");
  if (event.allowed) lastLogin = { li, username: event.username, protocol: event.protocol, at: Date.now() };
  const account = event.account;
  if (!event.allowed || !account) return;
  const tr = $("rows").querySelector(`tr[data-username="${CSS.escape(account.username)}"]`);
  if (tr) {
    const cell = tr.querySelector(".last-login");
    cell.replaceChildren(...lastLoginCell(account.lastLogin, account.lastLoginProtocol));
    const row = state.rows.find((r) => r.username === account.username);
    if (row) Object.assign(row, account);
    tr.classList.remove("flash");
    void tr.offsetWidth; // restart the highlight
    tr.classList.add("flash");
  }
  if (state.order.field === "LAST_LOGIN") reloadSoon();
}

function changed(change) {
  const verb = change.kind === "ENABLED" ? "enabled" : "disabled";
  activity(change.occurredAt, `MAPI/EWS ${verb} for ${change.account.username} by ${change.actor}`, verb);
  showUsage(change.usage);
  reloadSoon();
}

function sessionMoved(change) {
  const session = change.session;
  const client = session.clientName ? ` (${session.clientName})` : "";
  if (change.kind === "STARTED") {
    const text = `${session.username} connected over ${session.protocol}${client}`;
    // The login that opened it was just listed: one line says both.
    const last = lastLogin;
    if (last?.username === session.username && last.protocol === session.protocol &&
        Date.now() - last.at < 5000 && last.li.isConnected) {
      last.li.className = "connected";
      last.li.querySelector("span").textContent = text;
    } else {
      activity(change.occurredAt, text, "connected");
    }
  } else {
    const reason = reasonText(change.reason);
    activity(change.occurredAt, `${session.username}'s ${session.protocol} session ended: ${reason}`, "ended");
  }
  sessionChanged(change);
}

// The newest login listed, which the session it opened may complete.
let lastLogin = null;

function activity(occurredAt, text, kind) {
  const li = document.createElement("li");
  li.className = kind;
  const time = document.createElement("time");
  time.dateTime = occurredAt;
  time.title = exactTime(occurredAt);
  time.textContent = relativeTime(occurredAt);
  const what = document.createElement("span");
  what.textContent = text;
  li.append(time, what);
  const list = $("activity");
  list.prepend(li);
  while (list.children.length > ACTIVITY_ITEMS) list.lastElementChild.remove();
  $("activity-empty").hidden = true;
  return li;
}

/** Live activity shows everything, or one kind of line (CSS hides the others). */
export function wireActivity() {
  $("activity-filter").addEventListener("change", (event) => {
    $("activity").dataset.show = event.target.value;
  });
}

// Relative times ("3 minutes ago") age while the page stays open.
setInterval(() => {
  for (const time of document.querySelectorAll("time[datetime]")) {
    time.textContent = relativeTime(time.dateTime);
  }
}, 15_000);
