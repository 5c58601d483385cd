// fabhub — the lab's week grid: blocks placed in proportion to time, and free time that
// books on a click or a drag. Without this script the grid reads as a list of times and
// each free block is a plain link to the machine's booking form (progressive enhancement).
// SPDX-License-Identifier: AGPL-3.0-or-later
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var grid = document.querySelector("[data-week-grid]");
  if (!grid) return;

  // The Content-Security-Policy allows no inline style attribute: the page gives each
  // block's place as data, and the script sets it through the DOM.
  grid.querySelectorAll("[data-left]").forEach(function (element) {
    element.style.left = element.dataset.left + "%";
    if (element.dataset.width !== undefined) element.style.width = element.dataset.width + "%";
  });
  grid.classList.add("positioned");

  var STEP = 15 * 60 * 1000; // picks snap to quarter hours
  var LENGTH = 60 * 60 * 1000; // a click proposes an hour
  var clock = new Intl.DateTimeFormat(grid.dataset.lang || undefined, {
    timeZone: grid.dataset.zone || undefined, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });

  function bounds(block) {
    return { start: Date.parse(block.dataset.start), end: Date.parse(block.dataset.end) };
  }

  function instantAt(block, clientX) {
    var box = block.getBoundingClientRect();
    var range = bounds(block);
    var fraction = Math.min(1, Math.max(0, (clientX - box.left) / box.width));
    return range.start + fraction * (range.end - range.start);
  }

  // The range a press (and an optional drag) picks, in quarter hours within the free block.
  function picked(block, from, to) {
    var range = bounds(block);
    var low = Math.min(from, to), high = Math.max(from, to);
    var start = range.start + Math.floor((low - range.start) / STEP) * STEP;
    var end = high - low < STEP / 2
      ? start + LENGTH
      : range.start + Math.ceil((high - range.start) / STEP) * STEP;
    return { start: start, end: Math.min(end, range.end) };
  }

  function bookingUrl(block, range) {
    var url = new URL(block.href, location.href);
    url.searchParams.set("start", new Date(range.start).toISOString());
    url.searchParams.set("end", new Date(range.end).toISOString());
    return url.toString();
  }

  var drag = null;
  var selection = document.createElement("span");
  selection.className = "block selection";

  function show(range) {
    var block = drag.block, whole = bounds(block);
    var left = parseFloat(block.dataset.left), width = parseFloat(block.dataset.width);
    var span = whole.end - whole.start;
    selection.style.left = left + width * (range.start - whole.start) / span + "%";
    selection.style.width = width * (range.end - range.start) / span + "%";
    selection.textContent = clock.format(range.start) + "–" + clock.format(range.end);
    if (!selection.parentNode || selection.parentNode !== block.parentNode) block.parentNode.appendChild(selection);
  }

  grid.addEventListener("pointerdown", function (event) {
    var block = event.target.closest("a.block.free");
    if (!block || event.button !== 0) return;
    event.preventDefault();
    var at = instantAt(block, event.clientX);
    drag = { block: block, from: at, to: at };
    block.setPointerCapture(event.pointerId);
    show(picked(block, at, at));
  });

  grid.addEventListener("pointermove", function (event) {
    if (!drag) return;
    drag.to = instantAt(drag.block, event.clientX);
    show(picked(drag.block, drag.from, drag.to));
  });

  grid.addEventListener("pointerup", function () {
    if (!drag) return;
    var target = bookingUrl(drag.block, picked(drag.block, drag.from, drag.to));
    drag = null;
    location.assign(target);
  });

  grid.addEventListener("pointercancel", function () {
    drag = null;
    selection.remove();
  });

  // The pointer handlers above already went to the form; a click from the keyboard
  // (Enter on a focused block) follows the link with its first free hour.
  grid.addEventListener("click", function (event) {
    if (event.target.closest("a.block.free") && event.detail > 0) event.preventDefault();
  });
});
