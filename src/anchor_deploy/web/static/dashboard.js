// anchor-deploy dashboard: live updates, copy buttons. No framework and nothing inline (the page's
// Content-Security-Policy allows scripts from /ui/static only). Everything works without this script;
// it only saves reloads.
"use strict";

(function () {
  const status = () => document.getElementById("live-status");

  function say(text) {
    const el = status();
    if (el) el.textContent = text;
  }

  // --- Live regions: the server says "change", the page is fetched again and its live parts swapped.
  let source = null;
  let fetching = false;
  let again = false;

  function liveIds(doc) {
    return Array.from(doc.querySelectorAll("[data-live][id]")).map((el) => el.id).join(" ");
  }

  function focusKey() {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    if (el.id) return "#" + CSS.escape(el.id);
    const tag = el.tagName.toLowerCase();
    const link = el.getAttribute("href");
    if (link) return tag + '[href="' + CSS.escape(link) + '"]';
    if (el.dataset.copy !== undefined) return tag + '[data-copy="' + CSS.escape(el.dataset.copy) + '"]';
    // A form's button: the form's action names it (one button per action and row in these pages).
    if (el.form && el.form.getAttribute("action")) {
      return 'form[action="' + CSS.escape(el.form.getAttribute("action")) + '"] ' + tag + '[type="' + (el.type || "submit") + '"]';
    }
    return null;
  }

  async function refresh() {
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      const answer = await fetch(window.location.href, { credentials: "same-origin", headers: { "X-Anchor-Live": "1" } });
      if (answer.redirected || answer.status === 401) { window.location.reload(); return; }
      if (!answer.ok) { say("Could not refresh this page (" + answer.status + "); it will try again."); return; }
      const doc = new DOMParser().parseFromString(await answer.text(), "text/html");
      const key = focusKey();
      const main = document.getElementById("main");
      if (liveIds(doc) !== liveIds(document)) {
        main.replaceChildren(...Array.from(doc.getElementById("main").childNodes).map((n) => document.importNode(n, true)));
      } else {
        for (const fresh of doc.querySelectorAll("[data-live][id]")) {
          const old = document.getElementById(fresh.id);
          if (old) old.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
        }
      }
      if (key) { const back = document.querySelector(key); if (back) back.focus({ preventScroll: true }); }
      const events = doc.body.dataset.events || "";
      if (events && events !== document.body.dataset.events) {
        document.body.dataset.events = events;
        listen();
      }
      say("Updated at " + new Date().toLocaleTimeString());
    } catch (err) {
      say("Could not refresh this page; it will try again.");
    } finally {
      fetching = false;
      if (again) { again = false; refresh(); }
    }
  }

  function listen() {
    const url = document.body.dataset.events;
    if (source) source.close();
    source = null;
    if (!url || !window.EventSource) return;
    source = new EventSource(url);
    source.addEventListener("change", refresh);
    source.addEventListener("signed-out", () => window.location.reload());
    source.addEventListener("gone", () => { source.close(); say("This no longer exists; it may have been deleted."); });
    source.addEventListener("busy", () => say("The database is busy; the page will update shortly."));
  }

  // --- Copy buttons: <button data-copy="text">.
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const label = Array.from(button.childNodes);  // its visually-hidden part too: put back as it was
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
    } catch (err) {
      button.textContent = "Select and copy it by hand";
    }
    setTimeout(() => { button.replaceChildren(...label); }, 1500);
  });

  document.addEventListener("DOMContentLoaded", listen);
  window.anchorDashboard = { refresh, say };
})();
