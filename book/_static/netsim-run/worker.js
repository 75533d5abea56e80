/* The book's Python, in a Web Worker so the page stays responsive while it starts and runs.
 *
 * Everything comes from the book's own files (issue #23): Pyodide's core and the wheels in
 * _static/pyodide/ (tools/pyodide_runtime.py puts them there, runtime.json names them), and
 * runner.py beside this file. Messages in:  {type: "start"} and {type: "run", id, cells: [code]}.
 * Messages out: {type: "progress", text, step, of}, {type: "ready", ms, pyodide, python},
 * {type: "result", id, results: [[output records] per cell run], ms: [per cell]} and
 * {type: "failed", id, text} when Python could not start. A run stops after the first cell that
 * raised, so a later cell never runs on a half-built state.
 */
"use strict";

var RUNTIME = new URL("../pyodide/", self.location.href).href;
var starting = null;
var runner = null;

function post(message) { self.postMessage(message); }

// A file of the book as bytes, synchronously: allowed in a worker, and what an import needs.
function fetchBytes(url) {
  var request = new XMLHttpRequest();
  request.open("GET", url, false);
  request.responseType = "arraybuffer";
  request.send();
  if (request.status !== 200) throw new Error(url + ": HTTP " + request.status);
  return new Uint8Array(request.response);
}

async function text(url) {
  var response = await fetch(url);
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  return response.text();
}

async function start() {
  var t0 = performance.now();
  post({type: "progress", text: "Loading Python (Pyodide, about 11 MB, once per visit)", step: 0, of: 3});
  var runtime = JSON.parse(await text(RUNTIME + "runtime.json"));
  importScripts(RUNTIME + "pyodide.js");
  var py = await self.loadPyodide({indexURL: RUNTIME, packages: []});
  post({type: "progress", text: "Loading netsim", step: 1, of: 3});
  await py.loadPackage(RUNTIME + runtime.netsim, {messageCallback: function () {}});
  var site = py.runPython("import sysconfig; sysconfig.get_paths()['purelib']");
  py.FS.writeFile(site + "/netsim_page_runner.py", await text(new URL("runner.py", self.location.href).href));
  // the files the chapters read (notebooks/data), at data/NAME in Python's working directory
  var data = runtime.data || [];
  py.FS.mkdirTree("data");
  for (var i = 0; i < data.length; i++) py.FS.writeFile("data/" + data[i], fetchBytes(RUNTIME + "data/" + data[i]));
  post({type: "progress", text: "Importing netsim", step: 2, of: 3});
  runner = py.pyimport("netsim_page_runner");
  runner.install_on_import("scapy", RUNTIME + runtime.scapy, fetchBytes);
  py.runPython("import netsim, netsim.views");
  post({type: "ready", ms: performance.now() - t0, pyodide: runtime.pyodide, python: runtime.python});
}

async function run(message) {
  try {
    await (starting = starting || start());
  } catch (err) {
    starting = null;
    post({type: "failed", id: message.id, text: String(err && err.message || err)});
    return;
  }
  var results = [], ms = [];
  for (var i = 0; i < message.cells.length; i++) {
    var t = performance.now();
    var outputs;
    try {
      outputs = JSON.parse(runner.run_cell_json(message.cells[i]));
    } catch (err) {                   // the runtime itself failed, not the reader's code
      outputs = [{type: "error", ename: "RuntimeError", evalue: String(err), traceback: String(err)}];
    }
    results.push(outputs);
    ms.push(performance.now() - t);
    if (outputs.some(function (o) { return o.type === "error"; })) break;
  }
  post({type: "result", id: message.id, results: results, ms: ms});
}

var queue = Promise.resolve();
self.onmessage = function (event) {
  var message = event.data;
  if (message.type === "start") {
    queue = queue.then(function () { return (starting = starting || start()); }).catch(function (err) {
      starting = null;
      post({type: "failed", id: null, text: String(err && err.message || err)});
    });
  } else if (message.type === "run") {
    queue = queue.then(function () { return run(message); });
  }
};
