// What every part of the page shares: the API client, the page's state, and small helpers.

import { Api, GraphQLError } from "./graphql.js";

export const DEFAULT_ORDER = { field: "USERNAME", direction: "ASC" };
export const DEFAULT_PAGE_SIZE = 25;

export const $ = (id) => document.getElementById(id);
export const api = new Api();

export const state = {
  viewer: null,
  domain: null, // the domain's name
  manage: false, // whether this viewer may enable and disable here
  search: "",
  idle: null, // the "Show" filter: idle for this many days, or every account
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

export function show(view) {
  for (const id of ["loading", "sign-in-view", "no-access-view", "tab-view"]) {
    $(id).hidden = id !== view;
  }
}


export function showError(element, error) {
  element.textContent = messageOf(error);
  element.hidden = false;
}

export function messageOf(error) {
  if (error instanceof GraphQLError && error.code === "FORBIDDEN") {
    return `Not allowed: ${error.message}`;
  }
  return error?.message || "Something went wrong.";
}

// The server throttles a caller whose budget of query cost is short: say so while the page
// waits to try again (graphql.js for requests, activity.js for subscriptions).
let throttleTimer = null;
export function throttled(seconds) {
  const element = $("throttle-notice");
  clearInterval(throttleTimer);
  if (seconds <= 0) {
    element.hidden = true;
    return;
  }
  const until = Date.now() + seconds * 1000;
  const tell = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(throttleTimer);
      element.textContent = "Trying again…";
      return;
    }
    element.textContent =
      `The server is limiting how much this dashboard may ask for at once. Trying again in ${left} s…`;
  };
  tell();
  element.hidden = false;
  throttleTimer = setInterval(tell, 1000);
}
api.onThrottled = throttled;

let toastTimer = null;
export function toast(message) {
  const element = $("toast");
  element.textContent = message;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    element.hidden = true;
  }, 4000);
}

// A toast tells of the last action: the next one (a dialog opened) takes it away.
const nextAction = new MutationObserver((changes) => {
  if (changes.some((change) => change.target.open)) $("toast").hidden = true;
});
for (const dialog of document.querySelectorAll("dialog")) {
  nextAction.observe(dialog, { attributes: true, attributeFilter: ["open"] });
}

