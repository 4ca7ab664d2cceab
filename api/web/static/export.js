// "Export CSV": every page of what the table lists (its search, filter and order), as a CSV
// file made in the browser. Cells a spreadsheet would run as a formula get a leading
// apostrophe, as the server's own report does (OWASP's rule against CSV injection).

import { $, api, showError, state, toast } from "./page.js";
import { EXPORT } from "./queries.js";

function cell(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export async function exportCsv() {
  const button = $("export-button");
  button.disabled = true;
  const lines = [["account", "email_address", "name", "last_login", "last_login_protocol", "open_sessions"]];
  try {
    let after = null;
    do {
      const { mapiEwsAccounts: page } = await api.request(EXPORT, {
        domain: state.domain,
        search: state.search || null,
        orderBy: state.order,
        idleForDays: state.idle,
        after,
      });
      for (const { node } of page.edges) {
        lines.push([node.username, node.emailAddress, node.name, node.lastLogin, node.lastLoginProtocol, node.activeSessionCount]);
      }
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    } while (after);
  } catch (error) {
    showError($("page-error"), error);
    return;
  } finally {
    button.disabled = false;
  }
  const text = lines.map((line) => line.map(cell).join(",")).join("\r\n") + "\r\n";
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  link.download = `mapi-ews-${state.domain}${state.idle ? `-idle-${state.idle}-days` : ""}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  toast(`Exported ${lines.length - 1} account${lines.length === 2 ? "" : "s"}.`);
}

export function wireExport() {
  $("export-button").addEventListener("click", exportCsv);
}
