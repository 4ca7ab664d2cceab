// The Enable dialog (with suggestions as you type) and the Disable confirmation.

import { GraphQLError, SessionExpired } from "./graphql.js";
import { $, api, showError, state, toast } from "./page.js";
import { DISABLE, DISCONNECT, ENABLE, SET_PROTOCOLS, SUGGESTIONS } from "./queries.js";
import { load, showUsage } from "./table.js";

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

/** The usernames typed or pasted: several are separated by commas, semicolons or spaces. */
function typedNames() {
  return $("enable-username").value.split(/[\s,;]+/).filter(Boolean);
}

function suggest() {
  clearTimeout(suggestionTimer);
  suggestionTimer = setTimeout(async () => {
    const serial = ++suggestionSerial;
    // Suggestions for the name being typed: the last one.
    const typing = /[\s,;]$/.test($("enable-username").value) ? "" : (typedNames().at(-1) ?? "");
    const search = typing;
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
  // The picked name takes the place of the one being typed; the others stay.
  const names = typedNames();
  const typing = /[\s,;]$/.test($("enable-username").value) ? [] : names.slice(-1);
  const kept = names.slice(0, names.length - typing.length);
  $("enable-username").value = [...kept, username].join(", ");
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
  const usernames = [...new Set(typedNames())];
  const username = usernames[0];
  const error = $("enable-error");
  if (!username) {
    showError(error, new Error("Enter the username of an account of this domain."));
    $("enable-username").focus();
    return;
  }
  const protocols = chosen("enable");
  if (!protocols) {
    showError(error, new Error("Choose MAPI, EWS or both."));
    return;
  }
  closeSuggestions();
  $("enable-save").disabled = true;
  try {
    const { enableMapiEws: payload } = await api.request(ENABLE, {
      domain: state.domain,
      usernames,
      protocols: protocols.length === 2 ? null : protocols,
    });
    if (payload.userErrors.length) {
      showError(error, new Error(payload.userErrors.map((e) => e.message).join(" ")));
      $("enable-username").select();
      return;
    }
    enableDialog.close();
    showUsage(payload.usage);
    toast(enabledText(payload));
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

/** The first ten names of a confirmation's list, and how many more. */
function listNames(list, usernames) {
  const shown = usernames.slice(0, 10).map((username) => {
    const li = document.createElement("li");
    li.textContent = username;
    return li;
  });
  if (usernames.length > 10) {
    const more = document.createElement("li");
    more.textContent = `and ${usernames.length - 10} more`;
    shown.push(more);
  }
  list.replaceChildren(...shown);
}

function sessionsText(count) {
  return count === 1 ? "1 open session was" : `${count} open sessions were`;
}

/** What an enable did: only what changed, and the accounts that had it already. */
function enabledText(payload) {
  const named = payload.accounts.map((account) => account.username);
  const changed = named.filter((name) => !payload.unchanged.includes(name));
  if (!changed.length) {
    return named.length === 1
      ? `${named[0]} already has MAPI/EWS with these protocols: nothing changed.`
      : `These ${named.length} accounts already have MAPI/EWS with these protocols: nothing changed.`;
  }
  const who = changed.length === 1 ? changed[0] : `${changed.length} accounts`;
  const others = payload.unchanged.length ? ` (${payload.unchanged.length} had it already)` : "";
  return `MAPI/EWS enabled for ${who}${others}.`;
}

/** What a disable did: only what changed, and sessions only when some were told to end. */
function disabledText(usernames, payload) {
  const changed = usernames.filter((name) => !payload.unchanged.includes(name));
  if (!changed.length) {
    return usernames.length === 1
      ? `${usernames[0]} did not have MAPI/EWS: nothing changed.`
      : "None of these accounts had MAPI/EWS any more: nothing changed.";
  }
  const who = changed.length === 1 ? changed[0] : `${changed.length} accounts`;
  const others = payload.unchanged.length
    ? ` (${payload.unchanged.length} had it no more)`
    : "";
  const ending = payload.sessionsEnding
    ? `; ${sessionsText(payload.sessionsEnding)} told to end`
    : "";
  return `MAPI/EWS disabled for ${who}${others}${ending}.`;
}

function openDisable() {
  const usernames = [...state.selected].sort();
  if (!usernames.length) return;
  const count = usernames.length;
  $("disable-question").textContent =
    `Disable MAPI/EWS for ${count === 1 ? "this account" : `these ${count} accounts`}? ` +
    "They will no longer be able to connect over MAPI or EWS, and their open sessions end now.";
  listNames($("disable-list"), usernames);
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
    toast(disabledText(usernames, payload));
    await load();
  } catch (failure) {
    if (failure instanceof SessionExpired) return;
    showError($("disable-error"), failure);
  } finally {
    $("disable-confirm").disabled = false;
  }
}

/** The protocols ticked in a dialog (`${prefix}-mapi`, `${prefix}-ews`); null for none. */
function chosen(prefix) {
  const protocols = [];
  if ($(`${prefix}-mapi`).checked) protocols.push("MAPI");
  if ($(`${prefix}-ews`).checked) protocols.push("EWS");
  return protocols.length ? protocols : null;
}

// ---- protocols ----------------------------------------------------------------------------

const protocolsDialog = $("protocols-dialog");

function openProtocols() {
  const usernames = [...state.selected].sort();
  if (!usernames.length) return;
  const count = usernames.length;
  $("protocols-question").textContent =
    `Which protocols may ${count === 1 ? "this account" : `these ${count} accounts`} use? ` +
    "Open sessions over a protocol taken away end now; the seats stay.";
  listNames($("protocols-list"), usernames);
  const rows = state.rows.filter((row) => state.selected.has(row.username));
  $("protocols-mapi").checked = rows.some((row) => row.mapiEwsProtocols.includes("MAPI"));
  $("protocols-ews").checked = rows.some((row) => row.mapiEwsProtocols.includes("EWS"));
  $("protocols-error").hidden = true;
  protocolsDialog.showModal();
  $("protocols-mapi").focus();
}

async function confirmProtocols(event) {
  event.preventDefault();
  const usernames = [...state.selected].sort();
  const protocols = chosen("protocols");
  if (!protocols) {
    showError(
      $("protocols-error"),
      new Error("Choose MAPI, EWS or both; to take both away, disable MAPI/EWS instead."),
    );
    return;
  }
  $("protocols-confirm").disabled = true;
  try {
    const { setMapiEwsProtocols: payload } = await api.request(SET_PROTOCOLS, {
      domain: state.domain,
      usernames,
      protocols,
    });
    if (payload.userErrors.length) {
      showError($("protocols-error"), new Error(payload.userErrors.map((e) => e.message).join(" ")));
      return;
    }
    protocolsDialog.close();
    const count = usernames.length;
    const ending = payload.sessionsEnding
      ? `; ${sessionsText(payload.sessionsEnding)} told to end`
      : "";
    toast(
      `${count === 1 ? usernames[0] : `${count} accounts`} may use ${protocols.join(" and ")}` +
        `${ending}.`,
    );
    await load();
  } catch (failure) {
    if (failure instanceof SessionExpired) return;
    showError($("protocols-error"), failure);
  } finally {
    $("protocols-confirm").disabled = false;
  }
}

// ---- disconnect ---------------------------------------------------------------------------

const disconnectDialog = $("disconnect-dialog");

function openDisconnect() {
  const usernames = [...state.selected].sort();
  if (!usernames.length) return;
  const count = usernames.length;
  $("disconnect-question").textContent =
    `End the open MAPI/EWS sessions of ${count === 1 ? "this account" : `these ${count} accounts`}? ` +
    "Their clients are disconnected now; MAPI/EWS stays enabled, so they may sign in again.";
  listNames($("disconnect-list"), usernames);
  $("disconnect-error").hidden = true;
  $("disconnect-confirm").textContent = count === 1 ? "Disconnect" : `Disconnect ${count} accounts`;
  disconnectDialog.showModal();
  $("disconnect-cancel").focus();
}

async function confirmDisconnect(event) {
  event.preventDefault();
  const usernames = [...state.selected].sort();
  $("disconnect-confirm").disabled = true;
  try {
    const { disconnectMapiEws: payload } = await api.request(DISCONNECT, {
      domain: state.domain,
      usernames,
    });
    if (payload.userErrors.length) {
      showError($("disconnect-error"), new Error(payload.userErrors.map((e) => e.message).join(" ")));
      return;
    }
    disconnectDialog.close();
    const count = usernames.length;
    const who = count === 1 ? usernames[0] : `${count} accounts`;
    toast(
      payload.sessionsEnding
        ? `${sessionsText(payload.sessionsEnding)} told to end for ${who}.`
        : `${who} had no open MAPI/EWS session: nothing to end.`,
    );
    await load();
  } catch (failure) {
    if (failure instanceof SessionExpired) return;
    showError($("disconnect-error"), failure);
  } finally {
    $("disconnect-confirm").disabled = false;
  }
}

export function wireDialogs() {
  $("protocols-button").addEventListener("click", openProtocols);
  $("protocols-form").addEventListener("submit", confirmProtocols);
  $("protocols-cancel").addEventListener("click", () => protocolsDialog.close());
  $("disconnect-button").addEventListener("click", openDisconnect);
  $("disconnect-form").addEventListener("submit", confirmDisconnect);
  $("disconnect-cancel").addEventListener("click", () => disconnectDialog.close());
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
}
