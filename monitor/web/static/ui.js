// schema-drift-monitor UI: progressive enhancement only; every page works without this file.
"use strict";

// Filter and reference selects submit their form when changed (the button stays for no-JS browsers).
for (const select of document.querySelectorAll("select.autosubmit")) {
  select.addEventListener("change", () => select.form.requestSubmit());
}

// A diff opens at the change a permalink names, else at the first row of its worst change, else at its first
// changed row: its own scroll container moves, the window does not (without JavaScript it opens at the top
// and the change table links to the rows).
const WORST_FIRST = [".row.focus", ".row.by-breaking", ".row.by-warning", ".row.by-info", ".row.by-cosmetic",
  ".row:not(.same):not(.head)"];
for (const diff of document.querySelectorAll(".diff")) {
  const row = WORST_FIRST.map((selector) => diff.querySelector(selector)).find((found) => found);
  if (row && !location.hash) {
    const head = diff.querySelector(".row.head");
    const top = row.getBoundingClientRect().top - diff.getBoundingClientRect().top + diff.scrollTop;
    diff.scrollTop = Math.max(0, top - (head ? head.offsetHeight : 0) - 3 * row.offsetHeight);
  }
}

// The layout switch (side by side / unified) is a pair of links that reload the page with ?view=; here it
// switches in place and keeps the choice in the URL (and the fragment), so a reload or a shared link keeps it.
for (const link of document.querySelectorAll(".view-switch a[data-view]")) {
  link.addEventListener("click", (event) => {
    event.preventDefault();
    const view = link.dataset.view;
    for (const diff of document.querySelectorAll(".diff")) {
      diff.classList.remove("split", "unified");
      diff.classList.add(view);
    }
    for (const other of document.querySelectorAll(".view-switch a[data-view]")) {
      if (other.dataset.view === view) other.setAttribute("aria-current", "true");
      else other.removeAttribute("aria-current");
    }
    const url = new URL(location.href);
    url.searchParams.set("view", view);
    history.replaceState(null, "", url);
  });
}
