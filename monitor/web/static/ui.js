// schema-drift-monitor UI: progressive enhancement only; every page works without this file.
"use strict";

// Filter and reference selects submit their form when changed (the button stays for no-JS browsers).
for (const select of document.querySelectorAll("select.autosubmit")) {
  select.addEventListener("change", () => select.form.requestSubmit());
}

// Each document pane opens at the change a permalink names, else at its first changed line (the window
// itself does not move; without JavaScript the panes open at the top and the change table links there).
for (const pane of document.querySelectorAll("pre.doc")) {
  const line = pane.querySelector(".focus") || pane.querySelector(".chg");
  if (line && !location.hash) {
    pane.scrollTop = Math.max(0, line.offsetTop - pane.offsetTop - 3 * line.offsetHeight);
  }
}
