// Runs notebooks' code cells in Pyodide under Node, as the book's page runs them (runner.py).
// Usage: node pyodide_cells.js RUNTIME_DIR RUNNER_PY < [[cell code, ...] per notebook] (JSON)
// Prints [[[output record, ...] per cell] per notebook] (JSON); each notebook gets a fresh namespace.
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
  const [runtimeDir, runnerPath] = process.argv.slice(2);
  const runtime = JSON.parse(fs.readFileSync(path.join(runtimeDir, "runtime.json"), "utf8"));
  const { loadPyodide } = require(path.resolve(runtimeDir, "pyodide.js"));
  const py = await loadPyodide({ indexURL: path.resolve(runtimeDir) + "/", stdout: () => {}, stderr: () => {} });
  await py.loadPackage(path.resolve(runtimeDir, runtime.netsim), { messageCallback: () => {} });
  const site = py.runPython("import sysconfig; sysconfig.get_paths()['purelib']");
  py.FS.writeFile(site + "/netsim_page_runner.py", fs.readFileSync(runnerPath, "utf8"));
  py.FS.mkdirTree("data");        // the chapters' data files, where worker.js puts them
  for (const name of runtime.data || []) py.FS.writeFile("data/" + name, fs.readFileSync(path.join(runtimeDir, "data", name)));
  const readWheel = (url) => new Uint8Array(fs.readFileSync(path.resolve(runtimeDir, path.basename(url))));
  const notebooks = JSON.parse(fs.readFileSync(0, "utf8"));
  const results = [];
  for (const cells of notebooks) {
    const runner = py.runPython("import importlib, netsim_page_runner; importlib.reload(netsim_page_runner)");
    runner.install_on_import("scapy", runtime.scapy, readWheel);
    results.push(cells.map((code) => JSON.parse(runner.run_cell_json(code))));
  }
  process.stdout.write(JSON.stringify({ python: py.runPython("import sys; sys.version.split()[0]"), results }));
}

main().catch((err) => { console.error(err); process.exit(1); });
