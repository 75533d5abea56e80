"""The repository's Jupyter server settings: the pre-save hook that keeps a saved notebook loadable.

The hook is tested directly on notebook models here; tests/browser/test_jupyterlab.py saves
through a running server that `make lab`'s way of starting it configured.
"""

from __future__ import annotations

import copy
import runpy

import nbformat
import pytest
from traitlets.config import Config

from tools.toc import REPO

CONFIG_FILE = REPO / "jupyter_server_config.py"
WIDGET = "application/vnd.jupyter.widget-view+json"
VIEW = {"version_major": 2, "version_minor": 0, "model_id": "2f1c0a9e6b7d4e0f8a1b2c3d4e5f6a7b"}


def hook():
    return runpy.run_path(str(CONFIG_FILE))["drop_stale_widget_views"]


def _notebook() -> dict:
    nb = nbformat.v4.new_notebook()
    stepper = nbformat.v4.new_output("display_data", data={
        "text/plain": "<Stepper 'pod-a -> pod-c': 60 hops>", "text/html": "<div class='netsim-stepper'>...</div>",
        WIDGET: VIEW})
    result = nbformat.v4.new_output("execute_result", execution_count=2, data={
        "text/plain": "<Stepper>", "text/html": "<div>b</div>", WIDGET: VIEW})
    lone = nbformat.v4.new_output("display_data", data={"text/plain": "IntSlider(value=0)", WIDGET: VIEW})
    text = nbformat.v4.new_output("stream", text="hello\n")
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A chapter"),
        nbformat.v4.new_code_cell("views.Stepper(trace, cluster)", outputs=[text, stepper], execution_count=1),
        nbformat.v4.new_code_cell("st", outputs=[result], execution_count=2),
        nbformat.v4.new_code_cell("slider", outputs=[lone], execution_count=3),
    ]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                            "version_minor": 0}}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_a_widget_view_beside_html_is_dropped_and_the_widget_state_with_it():
    nb = _notebook()
    before = copy.deepcopy(nb)
    model = {"type": "notebook", "content": nb, "format": "json"}
    hook()(model=model, path="notebooks/01-toolbox.ipynb", contents_manager=None)
    out = model["content"]
    assert "widgets" not in out["metadata"]
    assert out["metadata"]["kernelspec"] == before["metadata"]["kernelspec"]
    stepper = out["cells"][1]["outputs"][1]["data"]
    assert set(stepper) == {"text/plain", "text/html"}
    assert stepper["text/html"] == before["cells"][1]["outputs"][1]["data"]["text/html"]
    assert set(out["cells"][2]["outputs"][0]["data"]) == {"text/plain", "text/html"}
    # nothing else changes: the stream, the lone widget (it has no other face), the sources
    assert out["cells"][1]["outputs"][0] == before["cells"][1]["outputs"][0]
    assert out["cells"][3] == before["cells"][3]
    assert [c["source"] for c in out["cells"]] == [c["source"] for c in before["cells"]]
    nbformat.validate(nbformat.from_dict(out))


def test_the_hook_is_idempotent_and_leaves_other_files_alone():
    nb = _notebook()
    model = {"type": "notebook", "content": nb}
    hook()(model=model, path="x.ipynb", contents_manager=None)
    once = copy.deepcopy(model)
    hook()(model=model, path="x.ipynb", contents_manager=None)
    assert model == once
    text = {"type": "file", "content": '{"data": {"%s": 1, "text/html": 2}}' % WIDGET, "format": "text"}
    saved = copy.deepcopy(text)
    hook()(model=text, path="notes.json", contents_manager=None)
    assert text == saved
    hook()(model={"type": "directory", "content": None}, path="notebooks", contents_manager=None)


def test_the_config_file_sets_the_hook_on_every_contents_manager():
    config = Config()
    namespace = runpy.run_path(str(CONFIG_FILE), init_globals={"get_config": lambda: config})
    assert config.ContentsManager.pre_save_hook is namespace["drop_stale_widget_views"]


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_the_stored_notebooks_are_what_the_hook_would_save(path):
    """A chapter saved from JupyterLab right after opening it does not change."""
    nb = nbformat.read(path, as_version=4)
    model = {"type": "notebook", "content": copy.deepcopy(nb)}
    hook()(model=model, path=str(path), contents_manager=None)
    assert model["content"] == nb
