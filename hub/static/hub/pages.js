// fabhub — small behaviours of every page, declared by data attributes in the HTML so the
// pages need no inline script (the Content-Security-Policy allows scripts from files only).
// SPDX-License-Identifier: AGPL-3.0-or-later
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // <input data-select-on-focus>: a clone URL is selected whole when clicked, ready to copy.
  document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });

  // <button data-copy="#id">: copies the text of the element named (a feed's address, a
  // clone URL) and says so on the button for a moment.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.querySelector(button.dataset.copy);
      if (!source) return;
      var text = (source.value !== undefined ? source.value : source.textContent).trim();
      var label = button.textContent;
      function done(ok) {
        button.textContent = ok ? "Copied" : "Select and copy it";
        setTimeout(function () { button.textContent = label; }, 2000);
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(false); });
      } else {
        var range = document.createRange();
        range.selectNodeContents(source);
        var chosen = window.getSelection();
        chosen.removeAllRanges();
        chosen.addRange(range);
        done(document.execCommand("copy"));
      }
    });
  });

  // <body data-reload-after="10">: a page that follows a live state (a print job, the
  // queue) reloads itself every so many seconds, unless the person is typing in it.
  var seconds = Number(document.body.dataset.reloadAfter || 0);
  if (seconds > 0) {
    setTimeout(function () {
      var active = document.activeElement;
      if (!active || active === document.body) location.reload();
    }, seconds * 1000);
  }
});
