/* Diff pages: a changed picture's before and after. Side by side by default; "Swipe"
   stacks them and shows the after from the slider's position on, "Onion skin" fades the
   after over the before. Sections arrive later through the fill-in (hub/diffs.js), so
   everything here listens on the document. */
(() => {
  "use strict";

  function show(box, mode) {
    for (const button of box.querySelectorAll("[data-mode]")) {
      button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
    }
    box.querySelector(".picture-sides").hidden = mode !== "side";
    box.querySelector(".picture-stack").hidden = mode === "side";
    box.querySelector(".picture-slider").hidden = mode === "side";
    box.dataset.mode = mode;
    box.querySelector("[data-slider-label]").textContent = mode === "swipe" ? "After shown from" : "After's opacity";
    apply(box);
  }

  function apply(box) {
    const over = box.querySelector(".picture-over");
    const value = Number(box.querySelector("[data-picture-slider]").value);
    // Each mode sets only its own property and clears the other's: a switch never
    // leaves the previous mode's view behind.
    over.style.clipPath = box.dataset.mode === "swipe" ? `inset(0 0 0 ${value}%)` : "";
    over.style.opacity = box.dataset.mode === "onion" ? String(value / 100) : "";
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-picture-diff] [data-mode]");
    if (button) show(button.closest("[data-picture-diff]"), button.dataset.mode);
  });
  document.addEventListener("input", (event) => {
    if (event.target.matches("[data-picture-slider]")) apply(event.target.closest("[data-picture-diff]"));
  });
  // Each side's size in pixels, once loaded: pictures loaded before this script ran now,
  // later ones (and those the fill-in brings) on their load event, which does not bubble:
  // listen while capturing.
  function label(image) {
    const size = image.closest("figure").querySelector("[data-picture-size]");
    if (size && image.naturalWidth) size.textContent = `${image.naturalWidth} × ${image.naturalHeight} px`;
  }
  document.addEventListener(
    "load",
    (event) => {
      if (event.target instanceof HTMLImageElement && event.target.closest(".picture-sides")) label(event.target);
    },
    true,
  );
  for (const image of document.querySelectorAll(".picture-sides img")) {
    if (image.complete) label(image);
  }
})();
