// The MAPI/EWS tab: sign in, the accounts with MAPI/EWS, enable, disable, live updates.
// Everything comes from /graphql; the page only shows it. This module signs in and out and
// picks the domain; table.js, dialogs.js and activity.js do the rest.

import { startLive, stopLive, wireActivity } from "./activity.js";
import { wireDialogs } from "./dialogs.js";
import { wireChart } from "./chart.js";
import { loadDomains, wireDomains } from "./domains.js";
import { loadReport, wireReport } from "./report.js";
import { wireExport } from "./export.js";
import { wireClients } from "./clients.js";
import { wireHistory } from "./history.js";
import { wireReclaim } from "./reclaim.js";
import { showView, wireViews } from "./views.js";
import { GraphQLError, NetworkError, SessionExpired } from "./graphql.js";
import { $, DEFAULT_ORDER, DEFAULT_PAGE_SIZE, api, show, showError, state, toast } from "./page.js";
import { LiveConnection } from "./live.js";
import { DOMAINS, DOMAIN_USAGE_UPDATES, VIEWER } from "./queries.js";
import { load, wireTable } from "./table.js";

const DOMAIN_KEY = "mapi-ews-admin.domain";

// ---- the console follows every domain ----------------------------------------------------

let consoleLive = null;
let consoleRefresh = null;

/** The domains table and this month's report follow every change, by anyone, on any process. */
function followConsole() {
  stopConsole();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const refresh = () => {
    clearTimeout(consoleRefresh);
    // A burst (a reclaim, a sync) is one reload.
    consoleRefresh = setTimeout(() => {
      loadDomains();
      if ($("report-month").value === new Date().toISOString().slice(0, 7)) loadReport();
    }, 300);
  };
  consoleLive = new LiveConnection({
    url: `${scheme}//${location.host}/graphql`,
    connectionParams: async () => ({ Authorization: `Bearer ${await api.accessToken()}` }),
    onStatus: () => {},
    onReconnected: refresh,
    onForbidden: () => api.refresh(),
  });
  consoleLive.subscribe(DOMAIN_USAGE_UPDATES, {}, { next: refresh, error: () => {}, complete: () => {} });
}

function stopConsole() {
  clearTimeout(consoleRefresh);
  consoleLive?.close();
  consoleLive = null;
}

function showSignIn(notice = "") {
  stopLive();
  stopConsole();
  // The next person to sign in in this tab starts from the defaults.
  Object.assign(state, { viewer: null, domain: null, search: "", order: { ...DEFAULT_ORDER } });
  state.pageSize = DEFAULT_PAGE_SIZE;
  $("page-size").value = String(DEFAULT_PAGE_SIZE);
  sessionStorage.removeItem(DOMAIN_KEY);
  $("admin-view").hidden = true;
  $("who").hidden = true;
  $("sign-in-notice").textContent = notice;
  $("sign-in-notice").hidden = !notice;
  $("sign-in-error").hidden = true;
  $("password").value = "";
  show("sign-in-view");
  $("username").focus();
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
  stopConsole();
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
  $("admin-view").hidden = state.viewer.role !== "SYSTEM_ADMIN";
  if (state.viewer.role === "SYSTEM_ADMIN") {
    loadDomains();
    loadReport();
    followConsole();
    await showDomainPicker();
  } else if (state.viewer.role === "DOMAIN_ADMIN") {
    $("domain-picker").hidden = true;
    await openDomain(state.viewer.domain);
  } else {
    show("no-access-view");
  }
}

// ---- the domain ---------------------------------------------------------------------------

/** Every domain's name, a page of 100 at a time. */
async function domainNames() {
  const names = [];
  let after = null;
  do {
    const { domains } = await api.request(DOMAINS, { after });
    names.push(...domains.edges.map((edge) => edge.node.name));
    after = domains.pageInfo.hasNextPage ? domains.pageInfo.endCursor : null;
  } while (after);
  return names;
}

async function showDomainPicker() {
  show("tab-view");
  $("domain-picker").hidden = false;
  const select = $("domain-select");
  const names = await domainNames();
  select.replaceChildren(new Option("Choose a domain…", ""), ...names.map((name) => new Option(name, name)));
  const remembered = sessionStorage.getItem(DOMAIN_KEY);
  if (remembered && names.includes(remembered)) {
    select.value = remembered;
    await openDomain(remembered);
  } else {
    $("domain-content").hidden = true;
    $("pick-domain").hidden = false;
    $("domain-name").textContent = "";
  }
}

async function openDomain(name) {
  stopLive();
  state.domain = name;
  state.search = "";
  $("search").value = "";
  state.idle = null;
  $("idle-filter").value = "";
  $("history-account").value = "";
  delete $("history-account").dataset.account;
  $("audit-search").value = "";
  $("audit-action").value = "";
  showView("tab-accounts");
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
    startLive(restart);
  }
}

// ---- wiring -------------------------------------------------------------------------------

$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
$("domain-select").addEventListener("change", (event) => {
  if (event.target.value) openDomain(event.target.value);
});
wireTable();
wireActivity();
wireDialogs();
wireReclaim();
wireViews();
wireHistory();
wireClients();
wireChart();
wireExport();
wireReport();
wireDomains({
  // "Open" in the domains table: the domain's own tab below, as the picker would.
  open: async (name) => {
    $("domain-select").value = name;
    await openDomain(name);
    $("tab-view").scrollIntoView({ behavior: "smooth", block: "start" });
  },
  // A domain created, changed or removed (name null): the picker lists what there is, an open
  // tab shows its new settings, and the tab of a removed domain closes.
  changed: async (name) => {
    loadReport(); // a new domain, a new limit or a removal changes the month's rows
    const select = $("domain-select");
    const picked = select.value;
    const names = await domainNames();
    select.replaceChildren(new Option("Choose a domain…", ""), ...names.map((n) => new Option(n, n)));
    if (picked && !names.includes(picked)) {
      stopLive();
      state.domain = null;
      sessionStorage.removeItem(DOMAIN_KEY);
      $("domain-content").hidden = true;
      $("pick-domain").hidden = false;
      return;
    }
    select.value = picked;
    if (name !== null && state.domain === name) await load();
  },
});
window.addEventListener("unhandledrejection", (event) => {
  if (event.reason instanceof SessionExpired) event.preventDefault();
  else if (event.reason instanceof NetworkError || event.reason instanceof GraphQLError) {
    event.preventDefault();
    toast(event.reason.message);
  }
});

start();
