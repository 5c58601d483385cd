// fabhub — the new-proposal page: a changed branch picker shows its changes at once. The
// pickers are a plain GET form, so without scripts the "Show changes" button does the same.
// SPDX-License-Identifier: AGPL-3.0-or-later
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-proposal-pickers]").forEach(function (form) {
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { form.submit(); });
    });
  });
});
