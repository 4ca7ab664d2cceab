// For system administrators: the monthly report (every domain's peak and end-of-month use, by
// name) for a chosen month, and its CSV, downloaded with the signed-in token.

import { SessionExpired } from "./graphql.js";
import { $, api, showError, toast } from "./page.js";
import { MONTHLY_REPORT } from "./queries.js";

let after = null;
let serial = 0;

function thisMonth() {
  return new Date().toISOString().slice(0, 7);
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

export async function loadReport({ more = false } = {}) {
  const mine = ++serial;
  const month = $("report-month").value || thisMonth();
  if (!more) after = null;
  let report;
  try {
    ({ mapiEwsUsageReport: report } = await api.request(MONTHLY_REPORT, { month, after }));
  } catch (error) {
    if (!(error instanceof SessionExpired) && mine === serial) {
      // Never the last month's rows under another month's name.
      $("report-rows").replaceChildren();
      $("report-range").textContent = "";
      $("report-more").hidden = true;
      $("report-empty").hidden = true;
      showError($("report-error"), error);
    }
    return;
  }
  if (mine !== serial) return;
  $("report-error").hidden = true;
  const rows = report.edges.map(({ node }) => {
    const tr = document.createElement("tr");
    tr.append(
      cell(node.domain),
      cell(String(node.peakEnabled)),
      cell(String(node.enabledAtEnd)),
      cell(node.limit === null ? "No limit" : String(node.limit)),
    );
    return tr;
  });
  if (more) $("report-rows").append(...rows);
  else $("report-rows").replaceChildren(...rows);
  const shown = $("report-rows").children.length;
  $("report-empty").hidden = shown > 0;
  $("report-range").textContent = shown ? `${shown} of ${report.totalCount} domains` : "";
  $("report-more").hidden = !report.pageInfo.hasNextPage;
  after = report.pageInfo.endCursor;
}

async function download() {
  const month = $("report-month").value || thisMonth();
  const button = $("report-download");
  button.disabled = true;
  try {
    const response = await fetch(`/reports/mapi-ews-usage.csv?month=${encodeURIComponent(month)}`, {
      headers: { Authorization: `Bearer ${await api.accessToken()}` },
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.error || `The report could not be downloaded (HTTP ${response.status}).`);
    }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `mapi-ews-usage-${month}.csv`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    toast(`Downloaded the report for ${month}.`);
  } catch (error) {
    if (!(error instanceof SessionExpired)) showError($("report-error"), error);
  } finally {
    button.disabled = false;
  }
}

export function wireReport() {
  // Months that have not begun have no figures: the picker stops at this one.
  $("report-month").max = thisMonth();
  $("report-month").value = thisMonth();
  $("report-month").addEventListener("change", () => loadReport());
  $("report-more").addEventListener("click", () => loadReport({ more: true }));
  $("report-download").addEventListener("click", download);
}
