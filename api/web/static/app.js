// The MAPI/EWS tab: sign in, the accounts with MAPI/EWS, enable, disable, live updates.
// Everything comes from /graphql; this file only shows it.

import { Api, GraphQLError, NetworkError, SessionExpired } from "./graphql.js";
import { LiveConnection } from "./live.js";
import { exactTime, lastLoginCell, relativeTime } from "./format.js";

const ACCOUNT_FIELDS = "id username emailAddress name lastLogin lastLoginProtocol";
const USAGE_FIELDS = "enabled limit available";

const VIEWER = `query Viewer { viewer { username role domain permissions } }`;
const DOMAINS = `query Domains { domains(first: 100) { edges { node { name } } } }`;
const TAB = `query Tab($domain: String!, $search: String, $orderBy: AccountOrder,
    $first: Int, $after: String, $last: Int, $before: String) {
  domain(name: $domain) { name mapiEwsAccountManagement }
  mapiEwsUsage(domain: $domain) { ${USAGE_FIELDS} }
  mapiEwsAccounts(domain: $domain, search: $search, orderBy: $orderBy,
      first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { ${ACCOUNT_FIELDS} } }
  }
}`;
const SUGGESTIONS = `query Suggestions($domain: String!, $search: String) {
  accounts(domain: $domain, search: $search, mapiEwsEnabled: false, first: 8,
      orderBy: {field: USERNAME}) {
    edges { node { id username name emailAddress } }
  }
}`;
const ENABLE = `mutation Enable($domain: String!, $usernames: [String!]!) {
  enableMapiEws(input: {domain: $domain, usernames: $usernames}) {
    accounts { username }
    usage { ${USAGE_FIELDS} }
    userErrors { field code message }
  }
}`;
const DISABLE = `mutation Disable($domain: String!, $usernames: [String!]!) {
  disableMapiEws(input: {domain: $domain, usernames: $usernames}) {
    accounts { username }
    usage { ${USAGE_FIELDS} }
    userErrors { field code message }
  }
}`;
const LOGIN_UPDATES = `subscription Logins($domain: String) {
  mapiEwsLoginUpdates(domain: $domain) {
    id username protocol occurredAt allowed clientAddress
    account { ${ACCOUNT_FIELDS} mapiEwsEnabled }
  }
}`;
const ACCOUNT_CHANGES = `subscription Changes($domain: String) {
  mapiEwsAccountChanges(domain: $domain) {
    kind actor occurredAt
    account { ${ACCOUNT_FIELDS} }
    usage { ${USAGE_FIELDS} }
  }
}`;

const ACTIVITY_ITEMS = 20;
const DEFAULT_ORDER = { field: "USERNAME", direction: "ASC" };
const DEFAULT_PAGE_SIZE = 25;
const DOMAIN_KEY = "mapi-ews-admin.domain";

const $ = (id) => document.getElementById(id);
const api = new Api();

const state = {
  viewer: null,
  domain: null, // the domain's name
  manage: false, // whether this viewer may enable and disable here
  search: "",
  order: { ...DEFAULT_ORDER },
  pageSize: DEFAULT_PAGE_SIZE,
  // The page asked for: {after} or {before} cursors; offset is the first row's position.
  page: { after: null, before: null, offset: 0 },
  rows: [],
  selected: new Set(),
  live: null,
  stopSubscriptions: [],
  loadSerial: 0,
};

// ---- views -------------------------------------------------------------------------------

function show(view) {
  for (const id of ["loading", "sign-in-view", "no-access-view", "tab-view"]) {
    $(id).hidden = id !== view;
  }
}

function showSignIn(notice = "") {
  stopLive();
  // The next person to sign in in this tab starts from the defaults.
  Object.assign(state, { viewer: null, domain: null, search: "", order: { ...DEFAULT_ORDER } });
  state.pageSize = DEFAULT_PAGE_SIZE;
  $("page-size").value = String(DEFAULT_PAGE_SIZE);
  sessionStorage.removeItem(DOMAIN_KEY);
  $("who").hidden = true;
  $("sign-in-notice").textContent = notice;
  $("sign-in-notice").hidden = !notice;
  $("sign-in-error").hidden = true;
  $("password").value = "";
  show("sign-in-view");
  $("username").focus();
}

function showError(element, error) {
  element.textContent = messageOf(error);
  element.hidden = false;
}

function messageOf(error) {
  if (error instanceof GraphQLError && error.code === "FORBIDDEN") {
    return `Not allowed: ${error.message}`;
  }
  return error?.message || "Something went wrong.";
}

let toastTimer = null;
function toast(message) {
  const element = $("toast");
  element.textContent = message;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    element.hidden = true;
  }, 4000);
}

// ---- signing in and out --------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  const error = $("sign-in-error");
  if (!username || !password) {
    showError(error, new Error("Enter your username and password."));
    (username ? $("password") : $("username")).focus();
    return;
  }
  $("sign-in-button").disabled = true;
  try {
    await api.signIn(username, password);
    $("sign-in-notice").hidden = true;
    await start();
  } catch (failure) {
    showError(error, failure);
    $("password").select();
  } finally {
    $("sign-in-button").disabled = false;
  }
}

async function signOut() {
  stopLive();
  await api.signOut();
  showSignIn("You have signed out.");
}

api.onExpired = () => showSignIn(new SessionExpired().message);

// Both subscriptions may fail at once: one restart for both.
let restarting = null;
function restart() {
  restarting ??= start().finally(() => {
    restarting = null;
  });
}

async function start() {
  if (!api.signedIn) {
    showSignIn();
    return;
  }
  try {
    const { viewer } = await api.request(VIEWER);
    state.viewer = viewer;
  } catch (error) {
    if (error instanceof SessionExpired) return; // onExpired has shown the sign-in
    show("sign-in-view");
    showError($("sign-in-error"), error);
    return;
  }
  stopLive();
  $("viewer-name").textContent = state.viewer.username;
  $("who").hidden = false;
  if (state.viewer.role === "SYSTEM_ADMIN") {
    await showDomainPicker();
  } else if (state.viewer.role === "DOMAIN_ADMIN") {
    $("domain-picker").hidden = true;
    await openDomain(state.viewer.domain);
  } else {
    show("no-access-view");
  }
}

// ---- the domain ---------------------------------------------------------------------------

async function showDomainPicker() {
  show("tab-view");
  $("domain-picker").hidden = false;
  const select = $("domain-select");
  const { domains } = await api.request(DOMAINS);
  const names = domains.edges.map((edge) => edge.node.name);
  select.replaceChildren(new Option("Choose a domain…", ""), ...names.map((name) => new Option(name, name)));
  const remembered = sessionStorage.getItem(DOMAIN_KEY);
  if (remembered && names.includes(remembered)) {
    select.value = remembered;
    await openDomain(remembered);
  } else {
    $("domain-content").hidden = true;
    $("pick-domain").hidden = false;
    $("domain-name").textContent = "";
    select.focus();
  }
}

async function openDomain(name) {
  stopLive();
  state.domain = name;
  state.search = "";
  $("search").value = "";
  state.page = { after: null, before: null, offset: 0 };
  state.selected.clear();
  $("activity").replaceChildren();
  $("activity-empty").hidden = false;
  $("pick-domain").hidden = true;
  $("domain-name").textContent = state.viewer.role === "SYSTEM_ADMIN" ? "" : name;
  if (state.viewer.role === "SYSTEM_ADMIN") sessionStorage.setItem(DOMAIN_KEY, name);
  show("tab-view");
  if (await load()) {
    $("domain-content").hidden = false;
    startLive();
  }
}

function applyPermission(domain) {
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

function showUsage(usage) {
  const enabled = usage.enabled;
  const noun = enabled === 1 && usage.limit === null ? "account" : "accounts";
  $("usage").textContent =
    usage.limit === null
      ? `${enabled} MAPI/EWS ${noun} in use (no limit)`
      : `${enabled} of ${usage.limit} MAPI/EWS accounts in use`;
  $("usage").classList.toggle("full", usage.limit !== null && usage.available === 0);
}

// ---- the table ----------------------------------------------------------------------------

/** Loads the page asked for in `state`; false when it failed (the error is shown). */
async function load() {
  const serial = ++state.loadSerial;
  const { after, before } = state.page;
  const variables = {
    domain: state.domain,
    search: state.search || null,
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

function render(connection) {
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
    ? `No account with MAPI/EWS matches “${state.search}”.`
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

function rowElement(account) {
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
  const name = document.createElement("td");
  name.className = "name";
  name.textContent = account.name ?? "";
  const lastLogin = document.createElement("td");
  lastLogin.className = "last-login";
  lastLogin.append(...lastLoginCell(account.lastLogin, account.lastLoginProtocol));
  tr.append(select, username, name, lastLogin);
  return tr;
}

function updateSelection() {
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
}

function selectAll() {
  const checked = $("select-all").checked;
  state.selected = new Set(checked ? state.rows.map((row) => row.username) : []);
  for (const box of $("rows").querySelectorAll("input[type=checkbox]")) box.checked = checked;
  updateSelection();
}

function sortBy(field) {
  const same = state.order.field === field;
  state.order = { field, direction: same && state.order.direction === "ASC" ? "DESC" : "ASC" };
  if (field === "LAST_LOGIN" && !same) state.order.direction = "DESC"; // newest first
  state.page = { after: null, before: null, offset: 0 };
  load();
}

function nextPage() {
  state.page = {
    after: state.pageInfo.endCursor,
    before: null,
    offset: state.page.offset + state.rows.length,
  };
  load();
}

function previousPage() {
  state.page = {
    after: null,
    before: state.pageInfo.startCursor,
    offset: Math.max(0, state.page.offset - state.pageSize),
  };
  load();
}

let searchTimer = null;
function searchChanged() {
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
function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, 150);
}

// ---- enable -------------------------------------------------------------------------------

const enableDialog = $("enable-dialog");
let suggestionTimer = null;
let suggestionSerial = 0;
let activeSuggestion = -1;

function openEnable() {
  $("enable-form").reset();
  $("enable-error").hidden = true;
  closeSuggestions();
  enableDialog.showModal();
  $("enable-username").focus();
  suggest();
}

function closeSuggestions() {
  $("suggestion-hint").textContent = "";
  $("suggestions").hidden = true;
  $("suggestions").replaceChildren();
  $("enable-username").setAttribute("aria-expanded", "false");
  $("enable-username").removeAttribute("aria-activedescendant");
  activeSuggestion = -1;
}

function suggest() {
  clearTimeout(suggestionTimer);
  suggestionTimer = setTimeout(async () => {
    const serial = ++suggestionSerial;
    const search = $("enable-username").value.trim();
    let data;
    try {
      data = await api.request(SUGGESTIONS, { domain: state.domain, search: search || null });
    } catch {
      return; // suggestions are a help; Save still reports any problem
    }
    if (serial !== suggestionSerial || !enableDialog.open) return;
    const accounts = data.accounts.edges.map((edge) => edge.node);
    const list = $("suggestions");
    list.replaceChildren(
      ...accounts.map((account, index) => {
        const option = document.createElement("li");
        option.id = `suggestion-${index}`;
        option.setAttribute("role", "option");
        option.dataset.username = account.username;
        const strong = document.createElement("strong");
        strong.textContent = account.username;
        const name = document.createElement("span");
        name.textContent = account.name ?? "";
        option.append(strong, name);
        option.addEventListener("mousedown", (event) => event.preventDefault());
        option.addEventListener("click", () => pickSuggestion(account.username));
        return option;
      }),
    );
    activeSuggestion = -1;
    list.hidden = accounts.length === 0;
    $("suggestion-hint").textContent =
      accounts.length || !search ? "" : `No account without MAPI/EWS matches “${search}”.`;
    $("enable-username").setAttribute("aria-expanded", String(accounts.length > 0));
  }, 150);
}

function pickSuggestion(username) {
  $("enable-username").value = username;
  closeSuggestions();
  $("enable-username").focus();
}

function moveSuggestion(step) {
  const options = [...$("suggestions").children];
  if (!options.length) return;
  activeSuggestion = (activeSuggestion + step + options.length) % options.length;
  options.forEach((option, index) => option.setAttribute("aria-selected", String(index === activeSuggestion)));
  $("enable-username").setAttribute("aria-activedescendant", options[activeSuggestion].id);
  options[activeSuggestion].scrollIntoView({ block: "nearest" });
}

function suggestionKeys(event) {
  const open = !$("suggestions").hidden;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    if (!open) suggest();
    else moveSuggestion(event.key === "ArrowDown" ? 1 : -1);
  } else if (event.key === "Enter" && open && activeSuggestion >= 0) {
    event.preventDefault();
    pickSuggestion($("suggestions").children[activeSuggestion].dataset.username);
  } else if (event.key === "Escape" && open) {
    event.preventDefault(); // close the list, not the dialog
    closeSuggestions();
  }
}

async function saveEnable(event) {
  event.preventDefault();
  const username = $("enable-username").value.trim();
  const error = $("enable-error");
  if (!username) {
    showError(error, new Error("Enter the username of an account of this domain."));
    $("enable-username").focus();
    return;
  }
  closeSuggestions();
  $("enable-save").disabled = true;
  try {
    const { enableMapiEws: payload } = await api.request(ENABLE, {
      domain: state.domain,
      usernames: [username],
    });
    if (payload.userErrors.length) {
      showError(error, new Error(payload.userErrors.map((e) => e.message).join(" ")));
      $("enable-username").select();
      return;
    }
    enableDialog.close();
    showUsage(payload.usage);
    toast(`MAPI/EWS enabled for ${payload.accounts[0]?.username ?? username}.`);
    await load();
  } catch (failure) {
    if (failure instanceof SessionExpired) return;
    showError(error, failure);
    if (failure instanceof GraphQLError && failure.code === "FORBIDDEN") load();
  } finally {
    $("enable-save").disabled = false;
  }
}

// ---- disable ------------------------------------------------------------------------------

const disableDialog = $("disable-dialog");

function openDisable() {
  const usernames = [...state.selected].sort();
  if (!usernames.length) return;
  const count = usernames.length;
  $("disable-question").textContent =
    `Disable MAPI/EWS for ${count === 1 ? "this account" : `these ${count} accounts`}? ` +
    "They will no longer be able to connect over MAPI or EWS.";
  const shown = usernames.slice(0, 10).map((username) => {
    const li = document.createElement("li");
    li.textContent = username;
    return li;
  });
  if (count > 10) {
    const more = document.createElement("li");
    more.textContent = `and ${count - 10} more`;
    shown.push(more);
  }
  $("disable-list").replaceChildren(...shown);
  $("disable-error").hidden = true;
  $("disable-confirm").textContent = count === 1 ? "Disable" : `Disable ${count} accounts`;
  disableDialog.showModal();
  $("disable-cancel").focus(); // the safe choice is the default one
}

async function confirmDisable(event) {
  event.preventDefault();
  const usernames = [...state.selected].sort();
  $("disable-confirm").disabled = true;
  try {
    const { disableMapiEws: payload } = await api.request(DISABLE, {
      domain: state.domain,
      usernames,
    });
    if (payload.userErrors.length) {
      showError($("disable-error"), new Error(payload.userErrors.map((e) => e.message).join(" ")));
      return;
    }
    disableDialog.close();
    state.selected.clear();
    showUsage(payload.usage);
    const count = usernames.length;
    toast(`MAPI/EWS disabled for ${count === 1 ? usernames[0] : `${count} accounts`}.`);
    await load();
  } catch (failure) {
    if (failure instanceof SessionExpired) return;
    showError($("disable-error"), failure);
  } finally {
    $("disable-confirm").disabled = false;
  }
}

// ---- live ---------------------------------------------------------------------------------

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

function startLive() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  state.live = new LiveConnection({
    url: `${scheme}//${location.host}/graphql`,
    connectionParams: async () => ({ Authorization: `Bearer ${await api.accessToken()}` }),
    onStatus: liveStatus,
    onReconnected: load, // events may have been missed while the connection was down
    onForbidden: () => api.refresh(),
  });
  subscribe(LOGIN_UPDATES, (data) => loggedIn(data.mapiEwsLoginUpdates));
  subscribe(ACCOUNT_CHANGES, (data) => changed(data.mapiEwsAccountChanges));
}

function subscribe(query, next) {
  const live = state.live;
  const again = (errors) => {
    if (state.live !== live) return;
    const code = Array.isArray(errors) ? errors[0]?.extensions?.code : null;
    if (code === "FORBIDDEN" || code === "UNAUTHENTICATED") {
      // The sign-in no longer grants this (the account was demoted, say): ask again who we are.
      restart();
      return;
    }
    // The server ended it (this page fell behind, say): start over, and catch up.
    setTimeout(() => {
      if (state.live === live) {
        subscribe(query, next);
        load();
      }
    }, 1000);
  };
  state.stopSubscriptions.push(
    live.subscribe(query, { domain: state.domain }, { next, error: again, complete: again }),
  );
}

function stopLive() {
  for (const stop of state.stopSubscriptions) stop();
  state.stopSubscriptions = [];
  state.live?.close();
  state.live = null;
  clearInterval(countdown);
  $("live-status").textContent = "";
}

function loggedIn(event) {
  const verb = event.allowed ? "signed in" : "was refused";
  activity(event.occurredAt, `${event.username} ${verb} over ${event.protocol}`, event.allowed ? "login" : "refused");
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
}

// Relative times ("3 minutes ago") age while the page stays open.
setInterval(() => {
  for (const time of document.querySelectorAll("time[datetime]")) {
    time.textContent = relativeTime(time.dateTime);
  }
}, 15_000);

// ---- wiring -------------------------------------------------------------------------------

$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
$("domain-select").addEventListener("change", (event) => {
  if (event.target.value) openDomain(event.target.value);
});
$("search").addEventListener("input", searchChanged);
$("select-all").addEventListener("change", selectAll);
for (const th of document.querySelectorAll("th[data-field]")) {
  th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.field));
}
$("page-size").addEventListener("change", (event) => {
  state.pageSize = Number(event.target.value);
  state.page = { after: null, before: null, offset: 0 };
  load();
});
$("next-page").addEventListener("click", nextPage);
$("previous-page").addEventListener("click", previousPage);
$("enable-button").addEventListener("click", openEnable);
$("enable-form").addEventListener("submit", saveEnable);
$("enable-cancel").addEventListener("click", () => enableDialog.close());
$("enable-username").addEventListener("input", () => {
  $("enable-error").hidden = true;
  suggest();
});
$("enable-username").addEventListener("keydown", suggestionKeys);
$("enable-username").addEventListener("blur", () => setTimeout(closeSuggestions, 100));
$("disable-button").addEventListener("click", openDisable);
$("disable-form").addEventListener("submit", confirmDisable);
$("disable-cancel").addEventListener("click", () => disableDialog.close());
window.addEventListener("unhandledrejection", (event) => {
  if (event.reason instanceof SessionExpired) event.preventDefault();
  else if (event.reason instanceof NetworkError || event.reason instanceof GraphQLError) {
    event.preventDefault();
    toast(event.reason.message);
  }
});

start();
