"""Jupyter server settings for the book's notebooks (`make lab` passes this file; so does Binder).

A save must never store what cannot be shown when the notebook is opened again. A live
stepper displays as an ipywidgets view with a self-contained text/html face beside it in the
same output. The view's model lives only in the running kernel, so a notebook saved with it
reopens with "Error displaying widget: model not found" in place of the stepper, and every save
writes a new model id (a change in `git diff` for nothing). The hook below drops such a view
when the HTML face is there to show instead, and drops the saved widget state
(`metadata.widgets`), exactly as tools/execute_notebooks.py stores notebooks in the repository.
A widget view with nothing beside it is kept: dropping it would leave nothing to show.
"""

from __future__ import annotations

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_stale_widget_views(model, **kwargs):
    """A ContentsManager pre-save hook: edit a notebook model's content in place before it is written."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    notebook = model["content"]
    notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data")
            if isinstance(data, dict) and WIDGET_VIEW in data and "text/html" in data:
                del data[WIDGET_VIEW]


if "get_config" in globals():   # run by Jupyter as a config file (a test imports it plainly)
    c = get_config()  # type: ignore[name-defined]  # noqa: F821
    c.ContentsManager.pre_save_hook = drop_stale_widget_views
    # The server applies this setting to each contents manager it makes (jupytext derives a
    # second one) and traitlets warns when the hook replaces itself; any other override still warns.
    import warnings
    warnings.filterwarnings("ignore", category=UserWarning, message=r"Overriding existing pre_save_hook "
                            r"\(drop_stale_widget_views\) with a new one \(drop_stale_widget_views\)")
