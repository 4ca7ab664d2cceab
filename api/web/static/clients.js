// The Client access view: the domain's client access policy (mode, rules, unnamed clients),
// checked with a dry run before it is saved, and the clients its logins used in 30 days.

import { exactTime, relativeTime } from "./format.js";
import { SessionExpired } from "./graphql.js";
import { $, api, showError, state, toast } from "./page.js";
import { CLIENT_ACCESS, SET_CLIENT_ACCESS } from "./queries.js";
import { onShow } from "./views.js";

const PROTOCOLS = [
  ["", "Both"],
  ["MAPI", "MAPI"],
  ["EWS", "EWS"],
];

function ruleRow(rule = { pattern: "", protocol: null, belowVersion: null }) {
  const tr = document.createElement("tr");
  const number = () => [...$("policy-rule-rows").children].indexOf(tr) + 1;
  const pattern = document.createElement("input");
  pattern.className = "rule-pattern";
  pattern.value = rule.pattern;
  pattern.placeholder = "Microsoft Outlook*";
  pattern.maxLength = 256;
  const protocol = document.createElement("select");
  protocol.className = "rule-protocol";
  for (const [value, label] of PROTOCOLS) protocol.add(new Option(label, value));
  protocol.value = rule.protocol ?? "";
  const below = document.createElement("input");
  below.className = "rule-below";
  below.value = rule.belowVersion ?? "";
  below.placeholder = "any version";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "link";
  remove.textContent = "Remove";
  remove.addEventListener("click", () => {
    tr.remove();
    changed();
  });
  const cells = [pattern, protocol, below, remove].map((control) => {
    const td = document.createElement("td");
    td.append(control);
    return td;
  });
  tr.append(...cells);
  // Labels that say which rule, read when focused (the numbers follow removals).
  for (const [control, what] of [
    [pattern, "Client name pattern"],
    [protocol, "Protocol"],
    [below, "Only versions below"],
    [remove, "Remove rule"],
  ]) {
    control.addEventListener("focus", () => control.setAttribute("aria-label", `${what}, rule ${number()}`));
    control.setAttribute("aria-label", what);
  }
  for (const control of [pattern, protocol, below]) control.addEventListener("input", changed);
  return tr;
}

function policyInput(dryRun) {
  const rules = [...$("policy-rule-rows").children].map((tr) => ({
    pattern: tr.querySelector(".rule-pattern").value,
    protocol: tr.querySelector(".rule-protocol").value || null,
    belowVersion: tr.querySelector(".rule-below").value.trim() || null,
  }));
  return {
    domain: state.domain,
    mode: $("policy-mode").value,
    rules,
    unnamed: $("policy-unnamed").checked,
    dryRun,
  };
}

let checked = null; // the input of the last dry run, while nothing has changed since

function changed() {
  checked = null;
  $("policy-check").hidden = true;
  $("policy-error").hidden = true;
  $("policy-save").textContent = "Save";
}

function showPolicy(policy) {
  $("policy-mode").value = policy.mode;
  $("policy-unnamed").checked = policy.allowUnnamedClients;
  $("policy-rule-rows").replaceChildren(...policy.rules.map((rule) => ruleRow(rule)));
  $("policy-updated").textContent = policy.updatedBy
    ? `Saved by ${policy.updatedBy} ${relativeTime(policy.updatedAt)}.`
    : "The default: every client may connect.";
  changed();
}

function showClients(clients) {
  const rows = clients.map((client) => {
    const tr = document.createElement("tr");
    tr.className = client.allowedNow ? "" : "refused";
    const seen = document.createElement("td");
    const time = document.createElement("time");
    time.dateTime = client.lastSeenAt;
    time.title = exactTime(client.lastSeenAt);
    time.textContent = relativeTime(client.lastSeenAt);
    seen.append(time);
    const cells = [
      client.clientName ?? "(no name sent)",
      client.protocol,
      String(client.accounts),
      String(client.logins),
      String(client.refusedLogins),
    ].map((text) => {
      const td = document.createElement("td");
      td.textContent = text;
      return td;
    });
    const now = document.createElement("td");
    now.textContent = client.allowedNow ? "Allowed" : "Refused";
    tr.append(...cells, seen, now);
    return tr;
  });
  $("client-rows").replaceChildren(...rows);
  $("clients-empty").hidden = rows.length > 0;
}

async function loadClients() {
  try {
    const data = await api.request(CLIENT_ACCESS, { domain: state.domain });
    showPolicy(data.clientAccessPolicy);
    showClients(data.mapiEwsClients);
    // Without the right to change it, the policy is shown as it is, its controls disabled.
    const manage = state.manage;
    for (const id of ["policy-add-rule", "policy-dry-run", "policy-save"]) $(id).hidden = !manage;
    for (const control of $("policy-form").querySelectorAll("input, select, button")) {
      control.disabled = !manage;
    }
  } catch (failure) {
    if (failure instanceof SessionExpired) return;
    showError($("policy-error"), failure);
  }
}

function fieldOf(error) {
  const [, , index, field] = error.field ?? [];
  return index === undefined ? "" : `Rule ${Number(index) + 1}${field ? ` (${field})` : ""}: `;
}

/** Runs the policy as a dry run (or for real); its payload, or null after showing its errors. */
async function send(dryRun) {
  const input = policyInput(dryRun);
  const { setClientAccessPolicy: payload } = await api.request(SET_CLIENT_ACCESS, input);
  if (payload.userErrors.length) {
    showError(
      $("policy-error"),
      new Error(payload.userErrors.map((e) => fieldOf(e) + e.message).join(" ")),
    );
    return null;
  }
  return payload;
}

function describe(payload, dryRun) {
  const clients = payload.refusedClients;
  const sessions = payload.sessionsEnding;
  const box = $("policy-check");
  const lead = dryRun
    ? sessions || clients.length
      ? `This policy would end ${sessions} open session${sessions === 1 ? "" : "s"} and refuse ` +
        `${clients.length} client${clients.length === 1 ? "" : "s"} seen in the last 30 days:`
      : "This policy refuses no open session and no client seen in the last 30 days."
    : "";
  const list = document.createElement("ul");
  for (const client of clients) {
    const li = document.createElement("li");
    li.textContent =
      `${client.clientName ?? "(no name sent)"} over ${client.protocol}: ` +
      `${client.accounts} account${client.accounts === 1 ? "" : "s"}`;
    list.append(li);
  }
  box.replaceChildren(lead, list);
  box.hidden = false;
}

/** The dry run's payload (shown), or null. */
async function dryRun() {
  $("policy-error").hidden = true;
  $("policy-dry-run").disabled = true;
  try {
    const payload = await send(true);
    if (!payload) return null;
    describe(payload, true);
    checked = JSON.stringify(policyInput(false));
    return payload;
  } catch (failure) {
    if (failure instanceof SessionExpired) return null;
    showError($("policy-error"), failure);
    return null;
  } finally {
    $("policy-dry-run").disabled = false;
  }
}

async function save(event) {
  event.preventDefault();
  // Save runs the check first: when the policy would refuse anything seen, that is shown, and
  // a second Save ("Save anyway") confirms it; a policy that refuses nothing seen is saved.
  if (checked !== JSON.stringify(policyInput(false))) {
    const check = await dryRun();
    if (!check) return;
    if (check.sessionsEnding || check.refusedClients.length) {
      $("policy-save").textContent = "Save anyway";
      return;
    }
  }
  $("policy-save").disabled = true;
  try {
    const payload = await send(false);
    if (!payload) return;
    const sessions = payload.sessionsEnding;
    toast(
      "Client access policy saved" +
        (sessions ? `; ${sessions} open session${sessions === 1 ? " was" : "s were"} told to end.` : "."),
    );
    await loadClients();
  } catch (failure) {
    if (failure instanceof SessionExpired) return;
    showError($("policy-error"), failure);
  } finally {
    $("policy-save").disabled = false;
    $("policy-save").textContent = "Save";
  }
}

export function wireClients() {
  onShow("tab-clients", loadClients);
  $("policy-add-rule").addEventListener("click", () => {
    const row = ruleRow();
    $("policy-rule-rows").append(row);
    changed();
    row.querySelector("input").focus();
  });
  $("policy-mode").addEventListener("change", changed);
  $("policy-unnamed").addEventListener("change", changed);
  $("policy-dry-run").addEventListener("click", dryRun);
  $("policy-form").addEventListener("submit", save);
}
