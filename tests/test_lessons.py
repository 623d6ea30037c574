"""Every lesson runs top to bottom (MINICON_FAST=1) and is stored without outputs."""

import json
import os
import pathlib

import pytest

from .cifar_fixtures import real_cifar10_dir

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
    # the kernel is a new process: make it import this checkout's minicon, not another install
    root = str(path.parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if "load_cifar10" in path.read_text():
        folder = real_cifar10_dir()
        if folder is None:
            pytest.skip(f"{path.name} reads CIFAR-10, which is not here: set MINICON_DATA_DIR "
                        "(e.g. ../shared/data) or run `minicon download cifar10`")
        monkeypatch.setenv("MINICON_DATA_DIR", str(folder))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
