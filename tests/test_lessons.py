"""Every lesson runs top to bottom (MINICON_FAST=1) and is stored without outputs."""

import json
import os
import pathlib

import pytest

LESSONS = sorted((pathlib.Path(__file__).parent.parent / "lessons").glob("*.ipynb"))


def test_there_are_lessons():
    assert LESSONS, "no notebooks found in lessons/"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_is_stored_without_outputs(path):
    notebook = json.loads(path.read_text())
    dirty = [
        i for i, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_runs_top_to_bottom(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="notebook tooling comes with the [dev] extra")
    nbclient = pytest.importorskip("nbclient", reason="notebook tooling comes with the [dev] extra")
    pytest.importorskip("ipykernel", reason="the lessons run on the ipykernel Python kernel")
    monkeypatch.setenv("MINICON_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    data = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    if "MINICON_DATA_DIR" not in os.environ and data.is_dir():
        monkeypatch.setenv("MINICON_DATA_DIR", str(data))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
