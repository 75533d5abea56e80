/* "Edit and run", once pressed: the cell becomes an editor and runs in the page (issue #23).
 *
 * One Web Worker per page (worker.js) holds Python; every cell of the page shares its
 * namespace. Running cell N first runs, once and in order, the page's earlier cells that have
 * not run yet (their edited text if they were edited), then cell N, whose output replaces the
 * output stored in the book: text, the last value's HTML (a stepper's static face) or SVG, or
 * the traceback of an error. While Python starts, a progress bar says what it is loading.
 */
(function () {
  "use strict";
  var worker = null, ready = false, base = "", nextId = 0;
  var pending = {};                 // run id -> function(message)
  var ran = new Set();              // cells whose code has run in this page's Python
  var runs = 0, renamed = 0;
  var cells = Array.prototype.slice.call(document.querySelectorAll("div.cell")).filter(function (c) {
    return c.querySelector(":scope > div.cell_input");
  });

  var STYLE =
    ".nsr-editor textarea{display:block;box-sizing:border-box;width:100%;min-height:3em;resize:vertical;" +
    "font-family:var(--pst-font-family-monospace,monospace);font-size:.875em;line-height:1.45;padding:.6em;" +
    "tab-size:4;white-space:pre;overflow-x:auto;border:1px solid var(--pst-color-border,#8a8f98);border-radius:.3em;" +
    "background:var(--pst-color-surface,#f6f8fa);color:var(--pst-color-text-base,#1f2328)}" +
    ".nsr-status{display:flex;align-items:center;gap:.5em;font-size:.85em;color:var(--pst-color-text-muted,#555)}" +
    ".nsr-status progress{width:8em}" +
    ".nsr-out{margin:.3em 0 1em;border-top:2px solid var(--pst-color-primary,#0a58ca);padding-top:.3em}" +
    ".nsr-out pre{margin:.2em 0;padding:.4em .6em;white-space:pre;overflow-x:auto;font-size:.85em;" +
    "background:var(--pst-color-surface,#f6f8fa);color:var(--pst-color-text-base,#1f2328)}" +
    ".nsr-out pre.nsr-stderr{background:#fff4e5;color:#6b3a00}" +
    ".nsr-out pre.nsr-error{background:#fdecea;color:#7a1712}" +
    "html[data-theme=dark] .nsr-out pre.nsr-stderr{background:#3a2a10;color:#f5d9a8}" +
    "html[data-theme=dark] .nsr-out pre.nsr-error{background:#3d1715;color:#ffc9c4}" +
    ".nsr-out svg{max-width:100%;height:auto}";

  function startWorker() {
    if (worker) return;
    var style = document.createElement("style");
    style.textContent = STYLE;
    document.head.appendChild(style);
    worker = new Worker(base + "netsim-run/worker.js");
    worker.onmessage = function (event) {
      var m = event.data;
      if (m.type === "progress") {
        progress(m.text, m.step, m.of);
      } else if (m.type === "ready") {
        ready = true;
        progress(null);
      } else if ((m.type === "result" || m.type === "failed") && pending[m.id]) {
        var done = pending[m.id];
        delete pending[m.id];
        done(m);
      } else if (m.type === "failed") {
        progress(null);
        statusAll("Python could not start: " + m.text);
      }
    };
    worker.onerror = function (event) {   // worker.js itself missing or broken: say so in the cells
      event.preventDefault();
      progress(null);
      statusAll("Python could not start: " + (event.message || "the worker did not load"));
      Object.keys(pending).forEach(function (id) {
        var done = pending[id];
        delete pending[id];
        done({type: "failed", text: event.message || "the worker did not load"});
      });
    };
    worker.postMessage({type: "start"});
  }

  // The progress bar shows in every open editor's status line until Python is ready.
  var lastProgress = null;
  function progress(text, step, of) {
    lastProgress = text === null ? null : {text: text, step: step, of: of};
    document.querySelectorAll(".nsr-editor .nsr-status").forEach(function (s) { showProgress(s); });
  }
  function showProgress(status) {
    if (!lastProgress) {
      var bar = status.querySelector("progress");
      if (bar) status.textContent = ready ? "Python is ready." : "";
      return;
    }
    status.textContent = "";
    var bar2 = document.createElement("progress");
    bar2.max = lastProgress.of;
    bar2.value = lastProgress.step;
    bar2.setAttribute("aria-label", "Starting Python");
    var label = document.createElement("span");
    label.textContent = lastProgress.text + "\u2026";
    status.append(bar2, label);
  }
  function statusAll(text) {
    document.querySelectorAll(".nsr-editor .nsr-status").forEach(function (s) { s.textContent = text; });
  }

  function code(cell) {
    var area = cell.querySelector(":scope > .nsr-editor textarea");
    if (area) return area.value;
    var pre = cell.querySelector(":scope > div.cell_input pre");
    return pre ? pre.textContent : "";
  }

  function open(cell, b) {
    base = b;
    startWorker();
    if (cell.querySelector(":scope > .nsr-editor")) {
      cell.querySelector(":scope > .nsr-editor textarea").focus();
      return;
    }
    var input = cell.querySelector(":scope > div.cell_input");
    var text = code(cell).replace(/\n$/, "");
    var editor = document.createElement("div");
    editor.className = "nsr-editor";
    var area = document.createElement("textarea");
    area.value = text;
    area.spellcheck = false;
    var grow = function () { area.rows = Math.min(30, area.value.split("\n").length + 1); };
    grow();
    area.addEventListener("input", grow);
    area.setAttribute("aria-label", "Code of cell " + (cells.indexOf(cell) + 1) + " (Shift+Enter runs it)");
    area.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.shiftKey || e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        run(cell);
      }
    });
    var bar = document.createElement("div");
    bar.className = "nsr-bar";
    var go = button("Run", "nsr-run", function () { run(cell); });
    go.title = "Run this cell (Shift+Enter); the cells above it run first, once";
    var undo = button("Undo edits", "nsr-undo", function () { area.value = text; area.focus(); });
    var status = document.createElement("span");
    status.className = "nsr-status";
    status.setAttribute("role", "status");
    bar.append(status, undo, go);
    editor.append(area, bar);
    input.hidden = true;
    var old = cell.querySelector(":scope > .nsr-bar");
    if (old) old.hidden = true;
    input.insertAdjacentElement("afterend", editor);
    showProgress(status);
    area.focus();
    area.setSelectionRange(0, 0);     // the caret at the start, the text's left edge in view
    area.scrollLeft = 0;
  }

  function button(label, cls, fn) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = label;
    b.addEventListener("click", fn);
    return b;
  }

  function run(cell) {
    var index = cells.indexOf(cell);
    var batch = [], order = [];
    for (var i = 0; i < index; i++) {
      if (!ran.has(i)) { batch.push(code(cells[i])); order.push(i); }
    }
    batch.push(code(cell));
    order.push(index);
    var status = cell.querySelector(".nsr-editor .nsr-status");
    var go = cell.querySelector(".nsr-editor .nsr-run");
    if (go.disabled) return;          // this cell is running already
    go.disabled = true;
    if (ready) status.textContent = order.length > 1 ? "Running the cells above first\u2026" : "Running\u2026";
    var id = ++nextId;
    pending[id] = function (m) {
      go.disabled = false;
      if (m.type === "failed") { status.textContent = "Python could not start: " + m.text; return; }
      m.results.forEach(function (_, k) { ran.add(order[k]); });
      var last = m.results.length - 1;
      var outputs = m.results[last];
      var note = "";
      if (order[last] !== index) {      // an earlier cell raised: show its error here
        note = "Cell " + (order[last] + 1) + " above raised an error, so this cell did not run:";
      }
      show(cell, outputs, note);
      var total = m.ms.reduce(function (a, b) { return a + b; }, 0);
      status.textContent = (order[last] === index ? "Ran" : "Stopped") + " in " + Math.round(total) + " ms" +
        (order.length > 1 ? " (with " + (order.length - 1) + " cell" + (order.length > 2 ? "s" : "") + " above)" : "") + ".";
    };
    worker.postMessage({type: "run", id: id, cells: batch});
  }

  // The cell's new output replaces the stored one (and the previous run's).
  function show(cell, outputs, note) {
    cell.querySelectorAll(":scope > div.cell_output, :scope > details, :scope > .nsr-out").forEach(function (e) {
      e.remove();
    });
    var out = document.createElement("div");
    out.className = "nsr-out";
    out.setAttribute("aria-live", "polite");
    out.dataset.run = String(++runs);
    if (note) out.appendChild(pre(note, "nsr-error"));
    outputs.forEach(function (o) {
      if (o.type === "stream") out.appendChild(pre(o.text, o.name === "stderr" ? "nsr-stderr" : "nsr-stdout"));
      else if (o.type === "error") out.appendChild(pre(o.traceback, "nsr-error"));
      else if (o.type === "display") out.appendChild(rich(o.data));
    });
    cell.querySelector(":scope > .nsr-editor").insertAdjacentElement("afterend", out);
    out.querySelectorAll("script").forEach(activate);
  }

  function pre(text, cls) {
    var p = document.createElement("pre");
    p.className = cls;
    p.textContent = text;
    return p;
  }

  function rich(data) {
    var div = document.createElement("div");
    div.className = "nsr-display";
    if (data["text/html"] !== undefined) div.innerHTML = unique(data["text/html"]);
    else if (data["image/svg+xml"] !== undefined) div.innerHTML = unique(data["image/svg+xml"]);
    else div.appendChild(pre(data["text/plain"] || "", "nsr-stdout"));
    return div;
  }

  // Markup written by innerHTML does not run its scripts; a fresh element does.
  function activate(old) {
    var type = old.getAttribute("type");
    if (type && !/javascript|ecmascript|module/.test(type)) return;
    var s = document.createElement("script");
    for (var i = 0; i < old.attributes.length; i++) s.setAttribute(old.attributes[i].name, old.attributes[i].value);
    s.textContent = old.textContent;
    old.replaceWith(s);
  }

  // DOM ids in the new output that the page already has (another cell showing the same
  // stepper) get a suffix, everywhere they occur, so each output's script finds its own.
  function unique(html) {
    var ids = [], m, re = /\sid="([^"]+)"/g;
    while ((m = re.exec(html))) if (document.getElementById(m[1])) ids.push(m[1]);
    ids.sort(function (a, b) { return a.length - b.length; });
    var done = [];
    ids.forEach(function (id) {
      if (done.some(function (p) { return id.indexOf(p) === 0; })) return;
      var pattern = new RegExp(id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "(?![0-9A-Za-z_])", "g");
      html = html.replace(pattern, id + "-r" + (++renamed));
      done.push(id);
    });
    return html;
  }

  window.netsimRun = {open: open};
})();
