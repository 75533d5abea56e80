/* "Edit and run": a button under each code cell of a chapter (issue #23).
 *
 * This loader is all a page fetches until a reader presses a button: it adds the buttons and
 * their style. Pressing one loads netsim-run/ui.js, which turns the cell into an editor and
 * starts Python (Pyodide, from the book's own files) in a Web Worker. A page opened from
 * file:// cannot start a worker, so there the button says how to serve the book instead.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script ? script.src.replace(/[^/]*$/, "") : "";
  var ui = null;

  function load() {
    if (!ui) {
      ui = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = base + "netsim-run/ui.js";
        s.onload = resolve;
        s.onerror = function () { ui = null; reject(new Error("netsim-run/ui.js did not load")); };
        document.head.appendChild(s);
      });
    }
    return ui;
  }

  function note(bar, text) {
    var p = bar.querySelector(".nsr-note") || bar.appendChild(document.createElement("span"));
    p.className = "nsr-note";
    p.setAttribute("role", "status");
    p.textContent = text;
  }

  function press(cell, bar) {
    if (location.protocol === "file:") {
      note(bar, "Running code needs the book served: run `make serve` in the repository and open " +
                "http://127.0.0.1:8000/ (or run the notebook in JupyterLab).");
      return;
    }
    load().then(function () { window.netsimRun.open(cell, base); },
                function (err) { note(bar, String(err.message)); });
  }

  function setup() {
    var inputs = document.querySelectorAll("div.cell > div.cell_input");
    if (!inputs.length) return;
    var style = document.createElement("style");
    style.textContent =
      ".nsr-bar{display:flex;flex-wrap:wrap;gap:.5em;align-items:center;justify-content:flex-end;margin:.2em 0 .4em}" +
      ".nsr-bar button{font:inherit;font-size:.85em;padding:.15em .7em;border-radius:.3em;cursor:pointer;" +
      "border:1px solid var(--pst-color-border,#8a8f98);background:var(--pst-color-surface,#f6f8fa);" +
      "color:var(--pst-color-text-base,#1f2328)}" +
      ".nsr-bar button:hover{border-color:var(--pst-color-primary,#0a58ca)}" +
      ".nsr-note{font-size:.85em;color:var(--pst-color-text-muted,#555);flex-basis:100%;text-align:right}";
    document.head.appendChild(style);
    for (var i = 0; i < inputs.length; i++) {
      (function (input) {
        var cell = input.parentNode;
        var bar = document.createElement("div");
        bar.className = "nsr-bar";
        var button = document.createElement("button");
        button.type = "button";
        button.className = "nsr-edit";
        button.textContent = "Edit and run";
        button.title = "Edit this cell and run it in the page (Python in your browser)";
        button.addEventListener("click", function () { press(cell, bar); });
        bar.appendChild(button);
        input.insertAdjacentElement("afterend", bar);
      })(inputs[i]);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
