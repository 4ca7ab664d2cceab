// The table of accounts with MAPI/EWS: loading, paging, sorting, searching, selecting.

import { lastLoginCell, protocolsText } from "./format.js";
import { SessionExpired } from "./graphql.js";
import { $, api, showError, state } from "./page.js";
import { TAB } from "./queries.js";
import { showAccountHistory } from "./history.js";
import { connectedCell } from "./sessions.js";

export function applyPermission(domain) {
  // System administrators may act in every domain; a domain's own administrators need the
  // permission a system administrator grants (MANAGE_MAPI_EWS).
  state.manage = state.viewer.role === "SYSTEM_ADMIN" || domain.mapiEwsAccountManagement;
  $("actions").hidden = !state.manage;
  $("accounts").classList.toggle("read-only", !state.manage);
  const notice = $("read-only");
  notice.hidden = domain.mapiEwsAccountManagement;
  notice.textContent = domain.mapiEwsAccountManagement
    ? ""
    : state.manage
      ? `The administrators of ${domain.name} may not enable or disable MAPI/EWS (a system ` +
        "administrator has not granted MANAGE_MAPI_EWS); as a system administrator, you can."
      : "This list is read-only: a system administrator has not allowed the administrators of " +
        `${domain.name} to enable or disable MAPI/EWS (the MANAGE_MAPI_EWS permission).`;
}

export function showUsage(usage) {
  const enabled = usage.enabled;
  const noun = enabled === 1 && usage.limit === null ? "account" : "accounts";
  const over = usage.limit !== null && enabled > usage.limit ? enabled - usage.limit : 0;
  $("usage").textContent =
    usage.limit === null
      ? `${enabled} MAPI/EWS ${noun} in use (no limit)`
      : over
        ? `${enabled} of ${usage.limit} MAPI/EWS accounts in use: ${over} over the allowance`
        : `${enabled} of ${usage.limit} MAPI/EWS accounts in use`;
  const full = usage.limit !== null && usage.available === 0;
  const nearly = usage.limit !== null && !full && enabled >= 0.9 * usage.limit;
  $("usage").classList.toggle("full", full);
  const warning = $("usage-warning");
  warning.hidden = !(full || nearly);
  warning.classList.toggle("full", full);
  warning.textContent = over
    ? `${over} ${over === 1 ? "account is" : "accounts are"} over the allowance of ` +
      `${usage.limit}: the limit was lowered below the accounts in use. Nobody lost MAPI/EWS, ` +
      `but no more can get it until ${over + 1} are disabled or the limit is raised.`
    : full
      ? "The allowance is used up: no more accounts can get MAPI/EWS until one is disabled or a " +
        "system administrator raises the limit. Reclaim idle… can free seats nobody uses."
      : nearly
        ? `Nearly used up: ${usage.available} of ${usage.limit} MAPI/EWS seats left.`
        : "";
  const enable = $("enable-button");
  enable.disabled = full;
  if (full) enable.setAttribute("aria-describedby", "usage-warning");
  else enable.removeAttribute("aria-describedby");
}

// ---- the table ----------------------------------------------------------------------------

/** Loads the page asked for in `state`; false when it failed (the error is shown). */
export async function load() {
  const serial = ++state.loadSerial;
  const { after, before } = state.page;
  const variables = {
    domain: state.domain,
    search: state.search || null,
    idleForDays: state.idle,
    orderBy: state.order,
    ...(before ? { last: state.pageSize, before } : { first: state.pageSize, after }),
  };
  try {
    const data = await api.request(TAB, variables);
    if (serial !== state.loadSerial) return true; // a newer load is on its way
    $("page-error").hidden = true;
    applyPermission(data.domain);
    showUsage(data.mapiEwsUsage);
    render(data.mapiEwsAccounts);
    return true;
  } catch (error) {
    if (error instanceof SessionExpired) return false;
    if (serial === state.loadSerial) {
      $("domain-content").hidden = false;
      showError($("page-error"), error);
    }
    return false;
  }
}

export function render(connection) {
  const rows = connection.edges.map((edge) => edge.node);
  if (!rows.length && state.page.offset > 0) {
    // The page emptied (its rows were disabled): go back to the first page.
    state.page = { after: null, before: null, offset: 0 };
    load();
    return;
  }
  state.rows = rows;
  state.pageInfo = connection.pageInfo;
  state.total = connection.totalCount;
  if (!connection.pageInfo.hasPreviousPage) state.page.offset = 0;
  const visible = new Set(rows.map((row) => row.username));
  for (const username of state.selected) if (!visible.has(username)) state.selected.delete(username);

  $("rows").replaceChildren(...rows.map(rowElement));
  const empty = $("empty");
  empty.hidden = rows.length > 0;
  empty.textContent = state.search
    ? `No account with MAPI/EWS matches “${state.search}”${state.idle ? ` among those idle for ${state.idle} days` : ""}.`
    : state.idle
      ? `No account with MAPI/EWS has been idle for ${state.idle} days.`
      : "No account has MAPI/EWS yet." + (state.manage ? " Use Enable to add one." : "");
  $("accounts").classList.toggle("is-empty", rows.length === 0);

  const first = rows.length ? state.page.offset + 1 : 0;
  const last = state.page.offset + rows.length;
  const shown = first === last ? `${first}` : `${first}–${last}`;
  $("range").textContent = rows.length ? `${shown} of ${connection.totalCount}` : "";
  $("previous-page").disabled = !connection.pageInfo.hasPreviousPage;
  $("next-page").disabled = !connection.pageInfo.hasNextPage;
  for (const th of document.querySelectorAll("th[data-field]")) {
    const sorted = th.dataset.field === state.order.field;
    if (sorted) th.setAttribute("aria-sort", state.order.direction === "ASC" ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  updateSelection();
}

export function rowElement(account) {
  const tr = document.createElement("tr");
  tr.dataset.username = account.username;
  const select = document.createElement("td");
  select.className = "select";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = state.selected.has(account.username);
  box.setAttribute("aria-label", `Select ${account.emailAddress}`);
  box.addEventListener("change", () => {
    if (box.checked) state.selected.add(account.username);
    else state.selected.delete(account.username);
    updateSelection();
  });
  select.append(box);
  const username = document.createElement("td");
  username.className = "account";
  username.textContent = account.username;
  username.title = account.emailAddress;
  const only = protocolsText(account.mapiEwsProtocols);
  if (only) {
    const badge = document.createElement("span");
    badge.className = "protocols";
    badge.textContent = only;
    username.append(" ", badge);
  }
  const name = document.createElement("td");
  name.className = "name";
  name.textContent = account.name ?? "";
  const lastLogin = document.createElement("td");
  lastLogin.className = "last-login";
  lastLogin.append(
    ...lastLoginCell(account.lastLogin, account.lastLoginProtocol, account.mapiEwsEnabledAt),
  );

  const connected = document.createElement("td");
  connected.className = "connected";
  connected.append(...connectedCell(account));
  const actions = document.createElement("td");
  actions.className = "row-actions";
  const history = document.createElement("button");
  history.type = "button";
  history.className = "link";
  history.textContent = "History";
  history.setAttribute("aria-label", `Login history of ${account.emailAddress}`);
  history.addEventListener("click", () => showAccountHistory(account.username));
  actions.append(history);
  tr.append(select, username, name, lastLogin, connected, actions);
  return tr;
}

export function updateSelection() {
  for (const tr of $("rows").children) {
    tr.classList.toggle("selected", state.selected.has(tr.dataset.username));
  }
  const count = state.selected.size;
  const all = $("select-all");
  all.checked = count > 0 && count === state.rows.length;
  all.indeterminate = count > 0 && count < state.rows.length;
  all.disabled = state.rows.length === 0;
  const disable = $("disable-button");
  disable.disabled = count === 0;
  disable.textContent = count ? `Disable (${count})` : "Disable";
  const protocols = $("protocols-button");
  protocols.disabled = count === 0;
  protocols.textContent = count ? `Protocols… (${count})` : "Protocols…";
  const disconnect = $("disconnect-button");
  disconnect.disabled = count === 0;
  disconnect.textContent = count ? `Disconnect (${count})` : "Disconnect";
}

export function selectAll() {
  const checked = $("select-all").checked;
  state.selected = new Set(checked ? state.rows.map((row) => row.username) : []);
  for (const box of $("rows").querySelectorAll("input[type=checkbox]")) box.checked = checked;
  updateSelection();
}

export function sortBy(field) {
  const same = state.order.field === field;
  state.order = { field, direction: same && state.order.direction === "ASC" ? "DESC" : "ASC" };
  if (field === "LAST_LOGIN" && !same) state.order.direction = "DESC"; // newest first
  state.page = { after: null, before: null, offset: 0 };
  load();
}

export function nextPage() {
  state.page = {
    after: state.pageInfo.endCursor,
    before: null,
    offset: state.page.offset + state.rows.length,
  };
  load();
}

export function previousPage() {
  state.page = {
    after: null,
    before: state.pageInfo.startCursor,
    offset: Math.max(0, state.page.offset - state.pageSize),
  };
  load();
}

let searchTimer = null;
export function searchChanged() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    const value = $("search").value.trim();
    if (value === state.search) return;
    state.search = value;
    state.page = { after: null, before: null, offset: 0 };
    load();
  }, 250);
}

// Live events can come in bursts (a disable of fifty accounts is fifty events): reload once.
let reloadTimer = null;
export function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, 150);
}

export function wireTable() {
  $("search").addEventListener("input", searchChanged);
  $("select-all").addEventListener("change", selectAll);
  for (const th of document.querySelectorAll("th[data-field]")) {
    th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.field));
  }
  $("idle-filter").addEventListener("change", (event) => {
    state.idle = event.target.value ? Number(event.target.value) : null;
    state.page = { after: null, before: null, offset: 0 };
    load();
  });
  $("page-size").addEventListener("change", (event) => {
    state.pageSize = Number(event.target.value);
    state.page = { after: null, before: null, offset: 0 };
    load();
  });
  $("next-page").addEventListener("click", nextPage);
  $("previous-page").addEventListener("click", previousPage);
}
