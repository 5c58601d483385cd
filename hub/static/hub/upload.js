// fabhub: drag-and-drop onto the upload form. Without it (or without scripts) the form's
// file input works as before; with it, dropped files and folders are sent by the same form
// to the same view, as one commit, with a progress bar. A dropped folder's files carry their
// path inside it (relative_path, in the files' order); the server checks every path.
// SPDX-License-Identifier: AGPL-3.0-or-later
"use strict";

document.querySelectorAll("form[data-drop-upload]").forEach(function (form) {
  var zone = form.querySelector(".drop-zone");
  var input = form.querySelector("input[type=file]");
  var list = form.querySelector(".drop-list");
  var progress = form.querySelector("progress");
  var dropped = [];
  zone.hidden = false;

  // Every file under a dropped entry, with its path from the dropped item down.
  function walk(entry, prefix) {
    if (entry.isFile) {
      return new Promise(function (resolve, reject) {
        entry.file(function (file) { resolve([{ file: file, path: prefix + file.name }]); }, reject);
      });
    }
    var reader = entry.createReader(), found = [];
    return new Promise(function (resolve, reject) {
      (function more() {
        // readEntries answers in batches: call it until it answers none.
        reader.readEntries(function (entries) {
          if (!entries.length) {
            Promise.all(found).then(function (parts) { resolve([].concat.apply([], parts)); }, reject);
            return;
          }
          entries.forEach(function (child) { found.push(walk(child, prefix + entry.name + "/")); });
          more();
        }, reject);
      })();
    });
  }

  function show() {
    list.replaceChildren();
    dropped.forEach(function (item) {
      var li = document.createElement("li");
      li.textContent = item.path + " (" + item.file.size.toLocaleString() + " bytes)";
      list.append(li);
    });
    zone.dataset.count = String(dropped.length);
    input.required = dropped.length === 0;
  }

  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
  });
  zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("over");
    var items = event.dataTransfer.items ? Array.prototype.slice.call(event.dataTransfer.items) : [];
    var entries = items.map(function (item) { return item.webkitGetAsEntry && item.webkitGetAsEntry(); });
    var found;
    if (entries.length && entries.every(Boolean)) {
      found = Promise.all(entries.map(function (entry) { return walk(entry, ""); })).then(function (parts) {
        return [].concat.apply([], parts);
      });
    } else {
      found = Promise.resolve(Array.prototype.map.call(event.dataTransfer.files, function (file) {
        return { file: file, path: file.name };
      }));
    }
    found.then(function (more) {
      dropped = dropped.concat(more);
      show();
    });
  });

  form.addEventListener("submit", function (event) {
    if (!dropped.length) return; // the plain form, as without scripts
    event.preventDefault();
    var body = new FormData(form);
    body.delete("files");
    dropped.forEach(function (item) {
      body.append("files", item.file, item.file.name);
      body.append("relative_path", item.path);
    });
    var request = new XMLHttpRequest();
    request.open("POST", form.action || location.href);
    progress.hidden = false;
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
    });
    request.addEventListener("load", function () {
      // Committed: the design page the view redirected to (its message already taken from
      // the session by this request, so shown from this answer, not loaded again).
      // Refused: the upload page with the reason. Either way, the answer becomes the page.
      var address = request.responseURL;
      document.open();
      document.write(request.responseText);
      document.close();
      if (address) history.replaceState(null, "", address);
    });
    request.addEventListener("error", function () {
      progress.hidden = true;
      zone.dataset.error = "The upload failed: check the connection and try again.";
      list.replaceChildren(document.createTextNode(zone.dataset.error));
    });
    request.send(body);
  });
});
