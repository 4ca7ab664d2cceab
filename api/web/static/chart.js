// The Usage view: the last 90 days of peak use against the allowance (from the first day in
// use, for a newer domain), drawn as plain SVG
// (nothing to download), with a sentence that says what the chart shows.

import { SessionExpired } from "./graphql.js";
import { $, api, state } from "./page.js";
import { USAGE_HISTORY } from "./queries.js";
import { onShow } from "./views.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720;
const HEIGHT = 220;
const PAD = { left: 40, right: 12, top: 12, bottom: 28 };

function element(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export function drawUsage(days) {
  const svg = $("usage-chart");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  const top = Math.max(1, ...days.map((d) => Math.max(d.peakEnabled, d.limit ?? 0)));
  const x = (i) => PAD.left + (i * (WIDTH - PAD.left - PAD.right)) / Math.max(1, days.length - 1);
  const y = (v) => HEIGHT - PAD.bottom - (v * (HEIGHT - PAD.top - PAD.bottom)) / top;
  const parts = [element("title", { id: "usage-chart-title" }, "Peak MAPI/EWS use per day")];
  for (const value of [0, Math.round(top / 2), top]) {
    parts.push(element("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value), class: "grid" }));
    parts.push(element("text", { x: PAD.left - 6, y: y(value) + 4, class: "axis", "text-anchor": "end" }, value));
  }
  if (days.length) {
    parts.push(element("text", { x: PAD.left, y: HEIGHT - 8, class: "axis" }, days[0].date));
    parts.push(
      element("text", { x: WIDTH - PAD.right, y: HEIGHT - 8, class: "axis", "text-anchor": "end" }, days.at(-1).date),
    );
    const peak = days.map((d, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(d.peakEnabled).toFixed(1)}`);
    parts.push(element("path", { d: peak.join(" "), class: "peak" }));
    // The allowance as a step per day: each day's limit across that day's width.
    const half = (x(1) - x(0)) / 2 || 0;
    const steps = days
      .map((d, i) => {
        if (d.limit === null) return "";
        const from = Math.max(PAD.left, x(i) - half);
        const to = Math.min(WIDTH - PAD.right, x(i) + half);
        return `M${from.toFixed(1)},${y(d.limit).toFixed(1)} H${to.toFixed(1)}`;
      })
      .filter(Boolean);
    if (steps.length) parts.push(element("path", { d: steps.join(" "), class: "limit" }));
  }
  svg.replaceChildren(...parts);
  const highest = days.reduce((best, d) => (d.peakEnabled > (best?.peakEnabled ?? -1) ? d : best), null);
  const last = days.at(-1);
  $("usage-chart-summary").textContent = highest
    ? `Highest: ${highest.peakEnabled} on ${highest.date}. Today: ${last.enabledAtEnd} in use` +
      (last.limit === null ? " (no limit)." : ` of ${last.limit} allowed.`) +
      " Solid line: peak use; dashed line: the allowance."
    : "No use recorded yet.";
}

/** The days from the first with a seat or an allowance on (at least the last 14): a new
 * domain's chart shows its own days, not 89 empty ones before a spike. */
export function sinceInUse(days) {
  const first = days.findIndex((d) => d.peakEnabled > 0 || d.limit !== null);
  const start = first < 0 ? days.length : first;
  return days.slice(Math.max(0, Math.min(start, days.length - 14)));
}

async function loadUsage() {
  const to = new Date();
  const from = new Date(to.getTime() - 89 * 24 * 3600 * 1000);
  try {
    const data = await api.request(USAGE_HISTORY, { domain: state.domain, from: isoDay(from), to: isoDay(to) });
    drawUsage(sinceInUse(data.mapiEwsUsageHistory));
  } catch (error) {
    if (!(error instanceof SessionExpired)) $("usage-chart-summary").textContent = error.message;
  }
}

export function wireChart() {
  onShow("tab-usage", loadUsage);
}
