// The domain's views as tabs (Accounts, Usage, Login history, Audit log): arrow keys move
// between tabs, as the ARIA tabs pattern says; a view loads when it is shown.

import { $ } from "./page.js";

const loaders = new Map(); // tab id -> function that loads its panel

export function onShow(tabId, load) {
  loaders.set(tabId, load);
}

function tabs() {
  return [...document.querySelectorAll('.views [role="tab"]')];
}

export function showView(tabId) {
  for (const tab of tabs()) {
    const selected = tab.id === tabId;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  loaders.get(tabId)?.();
}

export function wireViews() {
  for (const tab of tabs()) {
    tab.addEventListener("click", () => showView(tab.id));
    tab.addEventListener("keydown", (event) => {
      const all = tabs();
      const at = all.indexOf(tab);
      const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: all.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      const target = all[(next + all.length) % all.length];
      target.focus();
      showView(target.id);
    });
  }
}
