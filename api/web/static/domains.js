// For system administrators: every domain with its use, right and idle policy (searchable,
// sortable by name or by use, a page of 25 at a time), New domain…, and Edit in a dialog.
//
// The table reads every domain once, a page of 100 at a time (one count per page, as the
// domain picker does), then searches, sorts and pages in the browser: sorting by use needs every
// domain's count, which the API does not yet sort by.

import { SessionExpired } from "./graphql.js";
import { $, api, showError, toast } from "./page.js";
import { CREATE_DOMAIN, DOMAINS, REMOVE_DOMAIN, UPDATE_DOMAIN } from "./queries.js";

const PAGE = 25;
const view = { all: [], search: "", sort: { key: "name", descending: false }, offset: 0 };
let editing = null; // the domain being edited, or null for a new one
let onOpen = () => {};
let onChanged = () => {};

function useOf(domain) {
  const { enabled, limit } = domain.mapiEwsUsage;
  return limit === null ? `${enabled} (no limit)` : `${enabled} of ${limit}`;
}

/** How full the allowance is; a domain without a limit is never full (it sorts after the rest). */
function ratio(domain) {
  const { enabled, limit } = domain.mapiEwsUsage;
  if (limit === null) return -1;
  return limit ? enabled / limit : 1;
}

export async function loadDomains() {
  const all = [];
  let after = null;
  try {
    do {
      const { domains } = await api.request(DOMAINS, { after });
      all.push(...domains.edges.map((edge) => edge.node));
      after = domains.pageInfo.hasNextPage ? domains.pageInfo.endCursor : null;
    } while (after);
  } catch (error) {
    if (!(error instanceof SessionExpired)) showError($("domains-error"), error);
    return [];
  }
  $("domains-error").hidden = true;
  view.all = all;
  render();
  return all;
}

function shown() {
  const text = view.search.toLowerCase();
  const matching = view.all.filter((d) => d.name.includes(text));
  const { key, descending } = view.sort;
  matching.sort((a, b) => {
    const order =
      key === "use"
        ? ratio(a) - ratio(b) || a.mapiEwsUsage.enabled - b.mapiEwsUsage.enabled
        : a.name.localeCompare(b.name);
    return (descending ? -order : order) || a.name.localeCompare(b.name);
  });
  return matching;
}

function render() {
  const matching = shown();
  if (view.offset >= matching.length) view.offset = Math.max(0, matching.length - PAGE);
  const page = matching.slice(view.offset, view.offset + PAGE);
  $("domain-rows").replaceChildren(...page.map(row));
  $("domains-empty").hidden = page.length > 0;
  $("domains-empty").textContent = view.search
    ? `No domain matches “${view.search}”.`
    : "No domain yet. Use New domain to create one.";
  const first = page.length ? view.offset + 1 : 0;
  $("domains-range").textContent = page.length
    ? `${first}–${view.offset + page.length} of ${matching.length}`
    : "";
  $("domains-previous").disabled = view.offset === 0;
  $("domains-next").disabled = view.offset + PAGE >= matching.length;
  for (const th of document.querySelectorAll("#domains th[data-sort]")) {
    if (th.dataset.sort === view.sort.key) {
      th.setAttribute("aria-sort", view.sort.descending ? "descending" : "ascending");
    } else {
      th.removeAttribute("aria-sort");
    }
  }
}

function row(domain) {
  const tr = document.createElement("tr");
  tr.dataset.domain = domain.name;
  const name = document.createElement("td");
  name.className = "account";
  name.textContent = domain.name;
  const use = document.createElement("td");
  use.textContent = useOf(domain);
  use.classList.toggle("full", ratio(domain) >= 1);
  const manage = document.createElement("td");
  manage.textContent = domain.mapiEwsAccountManagement ? "Yes" : "No";
  const idle = document.createElement("td");
  idle.textContent = domain.mapiEwsIdleReclaimDays ? `After ${domain.mapiEwsIdleReclaimDays} days idle` : "Off";
  const actions = document.createElement("td");
  actions.className = "row-actions";
  const open = document.createElement("button");
  open.type = "button";
  open.className = "link";
  open.textContent = "Open";
  open.setAttribute("aria-label", `Open ${domain.name}`);
  open.addEventListener("click", () => onOpen(domain.name));
  const edit = document.createElement("button");
  edit.type = "button";
  edit.className = "link";
  edit.textContent = "Edit";
  edit.setAttribute("aria-label", `Edit ${domain.name}`);
  edit.addEventListener("click", () => openDialog(domain));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "link";
  remove.textContent = "Remove…";
  remove.setAttribute("aria-label", `Remove ${domain.name}`);
  remove.addEventListener("click", () => openRemoval(domain));
  actions.append(open, " ", edit, " ", remove);
  tr.append(name, use, manage, idle, actions);
  return tr;
}

const dialog = $("domain-dialog");

function openDialog(domain) {
  editing = domain;
  $("domain-form").reset();
  $("domain-form-error").hidden = true;
  $("domain-dialog-title").textContent = domain ? `Edit ${domain.name}` : "New domain";
  const name = $("domain-form-name");
  name.value = domain?.name ?? "";
  name.readOnly = Boolean(domain);
  $("domain-form-limit").value = domain?.maxMapiEwsAccounts ?? "";
  $("domain-form-manage").checked = domain ? domain.mapiEwsAccountManagement : true;
  const idle = $("domain-form-idle");
  const days = domain?.mapiEwsIdleReclaimDays;
  if (days && ![...idle.options].some((o) => o.value === String(days))) idle.add(new Option(`${days} days`, String(days)));
  idle.value = days ? String(days) : "";
  limitWarning();
  dialog.showModal();
  (domain ? $("domain-form-limit") : name).focus();
}

/** How many accounts a limit leaves over the allowance: none can lose MAPI/EWS by it. */
function overBy(limit) {
  const enabled = editing?.mapiEwsUsage.enabled ?? 0;
  return limit === "" || Number(limit) >= enabled ? 0 : enabled - Number(limit);
}

function limitWarning() {
  const limit = $("domain-form-limit").value.trim();
  const over = overBy(limit);
  const warning = $("domain-form-limit-warning");
  warning.hidden = !over;
  warning.textContent = over
    ? `${editing.mapiEwsUsage.enabled} accounts have MAPI/EWS now: a limit of ${limit} leaves ` +
      `${over} over the allowance. Nobody loses MAPI/EWS, but no more can get it until ` +
      `${over + 1} are disabled.`
    : "";
}

async function save(event) {
  event.preventDefault();
  const limit = $("domain-form-limit").value.trim();
  const variables = {
    name: $("domain-form-name").value.trim(),
    max: limit === "" ? null : Number(limit),
    manage: $("domain-form-manage").checked,
    idle: $("domain-form-idle").value ? Number($("domain-form-idle").value) : null,
  };
  $("domain-form-save").disabled = true;
  try {
    const data = await api.request(editing ? UPDATE_DOMAIN : CREATE_DOMAIN, variables);
    const payload = editing ? data.updateDomain : data.createDomain;
    if (payload.userErrors.length) {
      showError($("domain-form-error"), new Error(payload.userErrors.map((e) => e.message).join(" ")));
      return;
    }
    dialog.close();
    const over = editing ? overBy(limit) : 0;
    toast(
      !editing
        ? `${payload.domain.name} created.`
        : over
          ? `${variables.name} saved: ${over} ${over === 1 ? "account is" : "accounts are"} over the new allowance.`
          : `${variables.name} saved.`,
    );
    await loadDomains();
    onChanged(payload.domain.name);
  } catch (failure) {
    if (!(failure instanceof SessionExpired)) showError($("domain-form-error"), failure);
  } finally {
    $("domain-form-save").disabled = false;
  }
}

const removal = $("remove-domain-dialog");
let removing = null; // the domain whose removal is being confirmed

function openRemoval(domain) {
  removing = domain;
  $("remove-domain-form").reset();
  $("remove-domain-error").hidden = true;
  $("remove-domain-title").textContent = `Remove ${domain.name}?`;
  $("remove-domain-submit").disabled = true;
  removal.showModal();
  $("remove-domain-confirm").focus();
}

async function remove(event) {
  event.preventDefault();
  const typed = $("remove-domain-confirm").value.trim();
  $("remove-domain-submit").disabled = true;
  try {
    const data = await api.request(REMOVE_DOMAIN, { name: removing.name, confirm: typed });
    const payload = data.removeDomain;
    if (payload.userErrors.length) {
      showError($("remove-domain-error"), new Error(payload.userErrors.map((e) => e.message).join(" ")));
      return;
    }
    removal.close();
    const accounts = `${payload.removedAccounts} account${payload.removedAccounts === 1 ? "" : "s"}`;
    const ending = payload.sessionsEnding
      ? `; ${payload.sessionsEnding} open session${payload.sessionsEnding === 1 ? "" : "s"} told to end`
      : "";
    toast(`${removing.name} removed with ${accounts}${ending}.`);
    await loadDomains();
    onChanged(null);
  } catch (failure) {
    if (!(failure instanceof SessionExpired)) showError($("remove-domain-error"), failure);
  } finally {
    $("remove-domain-submit").disabled = $("remove-domain-confirm").value.trim().toLowerCase() !== removing?.name;
  }
}

export function wireDomains({ open, changed }) {
  onOpen = open;
  onChanged = changed;
  $("domain-form-limit").addEventListener("input", limitWarning);
  let typing = null;
  $("domain-search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      view.search = $("domain-search").value.trim().toLowerCase();
      view.offset = 0;
      render();
    }, 150);
  });
  for (const th of document.querySelectorAll("#domains th[data-sort]")) {
    th.querySelector("button").addEventListener("click", () => {
      const same = view.sort.key === th.dataset.sort;
      // Use reads best fullest first; names A to Z.
      view.sort = { key: th.dataset.sort, descending: same ? !view.sort.descending : th.dataset.sort === "use" };
      view.offset = 0;
      render();
    });
  }
  $("domains-previous").addEventListener("click", () => {
    view.offset = Math.max(0, view.offset - PAGE);
    render();
  });
  $("domains-next").addEventListener("click", () => {
    view.offset += PAGE;
    render();
  });
  $("new-domain").addEventListener("click", () => openDialog(null));
  $("domain-form").addEventListener("submit", save);
  $("domain-form-cancel").addEventListener("click", () => dialog.close());
  $("remove-domain-confirm").addEventListener("input", () => {
    const typed = $("remove-domain-confirm").value.trim().toLowerCase().replace(/\.$/, "");
    $("remove-domain-submit").disabled = typed !== removing?.name;
  });
  $("remove-domain-form").addEventListener("submit", remove);
  $("remove-domain-cancel").addEventListener("click", () => removal.close());
}
