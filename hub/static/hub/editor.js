// fabhub: the file editor's Markdown preview. The text is posted to the design's preview
// endpoint, which renders it as the hub renders every Markdown field (sanitised, bounded).
// SPDX-License-Identifier: AGPL-3.0-or-later
"use strict";

document.querySelectorAll("form[data-editor][data-preview-url]").forEach(function (form) {
  var tabs = form.querySelector(".editor-tabs");
  var text = form.querySelector("textarea[name=content]");
  var preview = form.querySelector(".editor-preview");
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  tabs.hidden = false;

  function show(which) {
    tabs.querySelectorAll("button").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.editorTab === which));
    });
    text.hidden = which !== "write";
    preview.hidden = which !== "preview";
  }

  tabs.addEventListener("click", function (event) {
    var tab = event.target.closest("[data-editor-tab]");
    if (!tab) return;
    if (tab.dataset.editorTab === "write") return show("write");
    preview.textContent = "Rendering…";
    show("preview");
    var body = new FormData();
    body.append("text", text.value);
    fetch(form.dataset.previewUrl, {
      method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": token },
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) throw new Error(answer.detail || "The preview failed (HTTP " + response.status + ").");
        // Sanitised by the server's Markdown boundary, as on every page that shows Markdown.
        preview.innerHTML = answer.html || "<p class=\"muted\">Nothing to preview.</p>";
      });
    }).catch(function (error) {
      preview.textContent = error.message;
    });
  });
});
