// anchor-deploy dashboard: a deployment's page. Follows the build log over server-sent events, appending
// each new line as text (never as markup), and refreshes the runtime log in place. Without this script the
// page still shows the log as it was when loaded.
"use strict";

(function () {
  const log = () => document.getElementById("build-log");

  function say(text) {
    const el = document.getElementById("build-log-state");
    if (el) el.textContent = text;
  }

  function atBottom(el) {
    return el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
  }

  function append(line) {
    const el = log();
    if (!el || line.seq <= Number(el.dataset.after || "0")) return; // shown already (a refreshed page has it)
    const follow = atBottom(el);
    el.append(document.createTextNode(line.text + "\n"));
    el.dataset.after = String(line.seq);
    if (follow) el.scrollTop = el.scrollHeight;
  }

  function follow() {
    const el = log();
    if (!el) return;
    el.scrollTop = el.scrollHeight;
    if (el.dataset.final === "true" || !window.EventSource) return;
    const source = new EventSource(el.dataset.stream + "?after=" + encodeURIComponent(el.dataset.after || "0"));
    source.addEventListener("line", (event) => append(JSON.parse(event.data)));
    source.addEventListener("end", (event) => {
      source.close();
      const el = log();
      if (el) el.dataset.final = "true";
      say("The build has ended: " + JSON.parse(event.data).status + ".");
    });
    source.addEventListener("signed-out", () => window.location.reload());
    source.addEventListener("gone", () => { source.close(); say("This deployment no longer exists."); });
    source.addEventListener("busy", () => say("The database is busy; the log will continue shortly."));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) say("The log stopped following; reload the page to see more.");
    });
  }

  // The runtime log's Refresh: the page's live parts are fetched again (static/dashboard.js); without a
  // script the link loads the page anew.
  document.addEventListener("click", (event) => {
    const link = event.target.closest("#runtime-refresh");
    if (!link || !window.anchorDashboard) return;
    event.preventDefault();
    window.anchorDashboard.refresh();
  });

  document.addEventListener("DOMContentLoaded", follow);
})();
