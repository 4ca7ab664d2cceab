// The login history (the domain's, or one account's from its row) and the audit log, newest
// first, a page of 25 at a time.

import { exactTime, refusalText, relativeTime } from "./format.js";
import { SessionExpired } from "./graphql.js";
import { $, api, showError, state } from "./page.js";
import { AUDIT, HISTORY } from "./queries.js";
import { onShow, showView } from "./views.js";

const AUDIT_ACTIONS = {
  MAPI_EWS_ENABLED: "MAPI/EWS enabled",
  MAPI_EWS_DISABLED: "MAPI/EWS disabled",
  MAPI_EWS_PROTOCOLS_CHANGED: "Protocols changed",
  MAPI_EWS_DISCONNECTED: "Sessions disconnected",
  CLIENT_ACCESS_POLICY_CHANGED: "Client access policy changed",
  ACCOUNT_CREATED: "Account created",
  ACCOUNT_UPDATED: "Account changed",
  ACCOUNT_RENAMED: "Account renamed",
  ACCOUNT_REMOVED: "Account removed",
  DOMAIN_CREATED: "Domain created",
  DOMAIN_UPDATED: "Domain changed",
  DOMAIN_REMOVED: "Domain removed",
  GATEWAY_TOKEN_CREATED: "Gateway token created",
  GATEWAY_TOKEN_REVOKED: "Gateway token revoked",
};

function timeCell(iso) {
  const td = document.createElement("td");
  const time = document.createElement("time");
  time.dateTime = iso;
  time.title = exactTime(iso);
  time.textContent = relativeTime(iso);
  td.append(time);
  return td;
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

/** How many reports the event stands for: the same login repeated within minutes is one row. */
function countCell(event) {
  const td = cell(String(event.count), "logins");
  if (event.count > 1) {
    td.title = `${event.count} logins from ${exactTime(event.occurredAt)} to ${exactTime(event.lastOccurredAt)}`;
  }
  return td;
}

/** A paged list: `cursors` holds the `after` of each page shown so far, for "Newer". */
function pager(name, query, variables, render, field) {
  const list = { cursors: [null], serial: 0 };
  list.load = async () => {
    const serial = ++list.serial;
    const after = list.cursors[list.cursors.length - 1];
    let connection;
    try {
      connection = (await api.request(query, { ...variables(), after }))[field];
    } catch (error) {
      if (!(error instanceof SessionExpired) && serial === list.serial) {
        showError($(`${name}-empty`), error);
      }
      return;
    }
    if (serial !== list.serial) return;
    const rows = connection.edges.map((edge) => edge.node);
    $(`${name}-rows`).replaceChildren(...rows.map(render));
    const page = list.cursors.length;
    $(`${name}-empty`).hidden = rows.length > 0;
    $(`${name}-range`).textContent = rows.length ? `Page ${page}` : "";
    $(`${name}-newer`).disabled = page === 1;
    $(`${name}-older`).disabled = !connection.pageInfo.hasNextPage;
    list.next = connection.pageInfo.endCursor;
  };
  list.restart = () => {
    list.cursors = [null];
    return list.load();
  };
  $(`${name}-older`).addEventListener("click", () => {
    list.cursors.push(list.next);
    list.load();
  });
  $(`${name}-newer`).addEventListener("click", () => {
    if (list.cursors.length > 1) list.cursors.pop();
    list.load();
  });
  return list;
}

let history;
let audit;

export function wireHistory() {
  history = pager(
    "history",
    HISTORY,
    () => historyFilter(),
    (event) => {
      const tr = document.createElement("tr");
      tr.className = event.allowed ? "" : "refused";
      const protocol = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = `protocol ${event.protocol.toLowerCase()}`;
      badge.textContent = event.protocol;
      protocol.append(badge);
      tr.append(
        timeCell(event.occurredAt),
        // No account: it was removed since (the mail server no longer has it).
        cell(event.account ? event.username : `${event.username} (removed)`, "account"),
        protocol,
        cell(event.clientName ?? "—"),
        cell(event.clientAddress ?? "—"),
        cell(event.allowed ? "Allowed" : `Refused: ${refusalText(event.refusal)}`),
        countCell(event),
      );
      return tr;
    },
    "mapiEwsLoginEvents",
  );
  audit = pager(
    "audit",
    AUDIT,
    () => {
      const search = $("audit-search").value.trim();
      const action = $("audit-action").value || null;
      $("audit-empty").textContent =
        search || action ? "No change matches this filter." : "No change has been made yet.";
      return { domain: state.domain, action, search: search || null };
    },
    (entry) => {
      const tr = document.createElement("tr");
      tr.append(
        timeCell(entry.occurredAt),
        cell(entry.actor),
        cell(AUDIT_ACTIONS[entry.action] ?? entry.action),
        cell(entry.target ?? ""),
      );
      return tr;
    },
    "auditLog",
  );
  $("audit-action").append(
    ...Object.entries(AUDIT_ACTIONS).map(([value, label]) => new Option(label, value)),
  );
  $("audit-action").addEventListener("change", () => audit.restart());
  let auditTyping = null;
  $("audit-search").addEventListener("input", () => {
    clearTimeout(auditTyping);
    auditTyping = setTimeout(() => audit.restart(), 250);
  });
  let typing = null;
  $("history-account").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => history.restart(), 250);
  });
  onShow("tab-history", () => history.restart());
  onShow("tab-audit", () => audit.restart());
}

/** The history's filter: one account exactly (from its row's History), or what the field
 * holds matched as the table's search does (part of a username or name). */
function historyFilter() {
  const field = $("history-account");
  const text = field.value.trim();
  $("history-empty").textContent = text
    ? `No login matches “${text}”.`
    : "No login has been reported yet.";
  const exact = text !== "" && text === field.dataset.account;
  return {
    domain: state.domain,
    username: exact ? text : null,
    search: exact || !text ? null : text,
  };
}

/** The login history of one account, from its row in the table. */
export function showAccountHistory(username) {
  $("history-account").value = username;
  $("history-account").dataset.account = username;
  showView("tab-history");
  $("tab-history").focus();
}
