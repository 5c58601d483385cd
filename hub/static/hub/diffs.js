/* Diff pages (commit, compare, proposal): fill in the comparisons still being computed.
   The page names its JSON endpoint in [data-diff-state]; each pending file is a section
   with data-pending. The endpoint answers with progress and the rendered sections of the
   files now compared, which replace the pending ones in place (no reload). */
(() => {
  "use strict";
  const box = document.querySelector("[data-diff-state]");
  if (!box) return;
  const text = box.querySelector(".diff-progress-text");
  const FIRST = 400, MOST = 4000;
  let delay = FIRST, timer = null;

  function pendingNumbers() {
    return [...document.querySelectorAll("section.diff[data-pending]")].map((s) => s.id.replace("file-", ""));
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  async function poll() {
    const numbers = pendingNumbers();
    const url = new URL(box.dataset.diffState, location.href);
    url.searchParams.set("pending", numbers.join(","));
    let state;
    try {
      const answer = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      state = await answer.json();
    } catch (error) {
      delay = Math.min(delay * 2, MOST);
      return schedule(delay);
    }
    for (const [id, html] of Object.entries(state.files)) {
      const old = document.getElementById(id);
      if (!old || !old.hasAttribute("data-pending")) continue;
      const holder = document.createElement("template");
      holder.innerHTML = html.trim();
      const fresh = holder.content.firstElementChild;
      old.replaceWith(fresh);
      if (window.fabhubMeshViewers) window.fabhubMeshViewers(fresh);
    }
    if (text) text.textContent = state.progress;
    box.hidden = state.pending === 0;
    box.dataset.pending = String(state.pending);
    if (state.pending > 0 || pendingNumbers().length) {
      delay = Math.min(delay * 1.5, MOST);
      schedule(delay);
    }
  }

  // A failed comparison's Retry: post it, mark its file pending again, and poll.
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches("form[data-diff-retry]")) return;
    event.preventDefault();
    const button = form.querySelector("button");
    const note = form.querySelector("[data-diff-retry-note]");
    button.disabled = true;
    let retried = 0;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.ok) retried = (await response.json()).retried;
    } catch (error) {
      retried = 0;
    }
    if (!retried) {
      // Not queued: it failed less than a minute ago, was tried too often, or the
      // request failed. Say so instead of showing a progress that never moves.
      button.disabled = false;
      if (note) note.textContent = "Not queued again: it failed moments ago or was tried too often. Try again in a minute.";
      return;
    }
    const section = form.closest("section.diff");
    if (section) section.setAttribute("data-pending", "");
    box.hidden = false;
    delay = FIRST;
    schedule(delay);
  });

  if (!box.hidden) schedule(delay);
})();
