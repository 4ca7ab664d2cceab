// "Reclaim idle…": the idle accounts a reclaim would take (a dry run) shown first, then taken
// back in one change once confirmed.

import { SessionExpired } from "./graphql.js";
import { $, api, showError, state, toast } from "./page.js";
import { RECLAIM } from "./queries.js";
import { load, showUsage } from "./table.js";

const dialog = $("reclaim-dialog");
let previewSerial = 0;

function openReclaim() {
  $("reclaim-days").value = String(state.idle ?? 90);
  $("reclaim-error").hidden = true;
  dialog.showModal();
  $("reclaim-days").focus();
  preview();
}

async function preview() {
  const serial = ++previewSerial;
  const days = Number($("reclaim-days").value);
  const confirm = $("reclaim-confirm");
  confirm.disabled = true;
  $("reclaim-preview").textContent = "Finding idle accounts…";
  $("reclaim-list").replaceChildren();
  let payload;
  try {
    ({ reclaimIdleMapiEws: payload } = await api.request(RECLAIM, {
      domain: state.domain,
      days,
      dryRun: true,
    }));
  } catch (failure) {
    if (serial === previewSerial && !(failure instanceof SessionExpired)) {
      showError($("reclaim-error"), failure);
    }
    return;
  }
  if (serial !== previewSerial) return;
  const idle = payload.accounts;
  $("reclaim-preview").textContent = idle.length
    ? `${idle.length === 1 ? "This account has" : `These ${idle.length} accounts have`} had ` +
      `no login for ${days} days or more. Reclaiming disables MAPI/EWS for ` +
      `${idle.length === 1 ? "it" : "them"} and ends ${idle.length === 1 ? "its" : "their"} open sessions.`
    : `No account has been idle for ${days} days: there is nothing to reclaim.`;
  const shown = idle.slice(0, 10).map((account) => {
    const li = document.createElement("li");
    li.textContent = account.name ? `${account.username} (${account.name})` : account.username;
    return li;
  });
  if (idle.length > 10) {
    const more = document.createElement("li");
    more.textContent = `and ${idle.length - 10} more`;
    shown.push(more);
  }
  $("reclaim-list").replaceChildren(...shown);
  confirm.textContent = idle.length === 1 ? "Reclaim 1 seat" : `Reclaim ${idle.length} seats`;
  confirm.disabled = idle.length === 0;
}

async function confirmReclaim(event) {
  event.preventDefault();
  const days = Number($("reclaim-days").value);
  $("reclaim-confirm").disabled = true;
  try {
    const { reclaimIdleMapiEws: payload } = await api.request(RECLAIM, {
      domain: state.domain,
      days,
      dryRun: false,
    });
    if (payload.userErrors.length) {
      showError($("reclaim-error"), new Error(payload.userErrors.map((e) => e.message).join(" ")));
      return;
    }
    dialog.close();
    showUsage(payload.usage);
    const count = payload.accounts.length;
    const sessions = payload.sessionsEnding;
    toast(
      `MAPI/EWS taken back from ${count === 1 ? "1 idle account" : `${count} idle accounts`}; ` +
        `${sessions === 1 ? "1 open session was" : `${sessions} open sessions were`} told to end.`,
    );
    await load();
  } catch (failure) {
    if (!(failure instanceof SessionExpired)) showError($("reclaim-error"), failure);
  } finally {
    $("reclaim-confirm").disabled = false;
  }
}

export function wireReclaim() {
  $("reclaim-button").addEventListener("click", openReclaim);
  $("reclaim-days").addEventListener("change", preview);
  $("reclaim-form").addEventListener("submit", confirmReclaim);
  $("reclaim-cancel").addEventListener("click", () => dialog.close());
}
