// fabhub — small behaviours of every page, declared by data attributes in the HTML so the
// pages need no inline script (the Content-Security-Policy allows scripts from files only).
// SPDX-License-Identifier: AGPL-3.0-or-later
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // <input data-select-on-focus>: a clone URL is selected whole when clicked, ready to copy.
  document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
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
