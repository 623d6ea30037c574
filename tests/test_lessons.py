"""Every lesson runs top to bottom (MINICON_FAST=1) with its exercises solved, and is stored
without outputs and with stubs only."""

import ast
import importlib.util
import json
import os
import pathlib

import pytest

from .cifar_fixtures import real_cifar10_dir

LESSONS = sorted((pathlib.Path(__file__).parent.parent / "lessons").glob("*.ipynb"))


def _load_fill():
    path = pathlib.Path(__file__).parent.parent / "lessons" / "solutions" / "fill.py"
    spec = importlib.util.spec_from_file_location("lesson_fill", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fill = _load_fill()


def _code_cells(path):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _is_stub(node) -> bool:
    """A def whose body is an optional docstring and ``raise NotImplementedError(...)``, or a class of them."""
    if isinstance(node, ast.ClassDef):
        return all(_is_stub(n) for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)))
    if not isinstance(node, ast.FunctionDef):
        return False
    body = node.body[1:] if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) else node.body
    return (len(body) == 1 and isinstance(body[0], ast.Raise) and isinstance(body[0].exc, ast.Call)
            and getattr(body[0].exc.func, "id", None) == "NotImplementedError")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_exercises_are_stubs_each_followed_by_an_asserting_check(path):
    cells = _code_cells(path)
    stubs = [i for i, source in enumerate(cells) if fill.regions(source)]
    assert stubs, f"{path.name} has no exercise stub"
    for i in stubs:
        lines = cells[i].splitlines()
        for start, end in fill.regions(cells[i]):
            tree = ast.parse("\n".join(lines[start + 1:end]))
            assert tree.body and all(_is_stub(n) for n in tree.body), \
                f"{path.name} code cell {i}: the stored region must be a stub, not a solution"
        check = cells[i + 1]
        assert "assert" in check or "gradcheck(" in check, f"{path.name}: no asserting check after cell {i}"
    assert len(fill.solutions_of(path)) == sum(len(fill.regions(cells[i])) for i in stubs)


def test_fill_pairs_every_region_with_one_solution(tmp_path, monkeypatch):
    lesson = tmp_path / "99_demo.ipynb"
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": "x = 1\n### BEGIN SOLUTION\ndef f():\n    raise NotImplementedError\n### END SOLUTION\nf()"}
    lesson.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setattr(fill, "HERE", tmp_path)
    with pytest.raises(ValueError, match="stub region 1 has no solution"):
        fill.filled(lesson)
    (tmp_path / "99_demo.py").write_text("def f():\n    return 2\n### NEXT SOLUTION\nextra = 3\n")
    with pytest.raises(ValueError, match="1 stub regions but 2 solutions"):
        fill.filled(lesson)
    (tmp_path / "99_demo.py").write_text("def f():\n    return 2\n")
    assert fill.filled(lesson)["cells"][0]["source"] == "x = 1\ndef f():\n    return 2\nf()"
    with pytest.raises(ValueError, match="without ### END SOLUTION"):
        fill.regions("### BEGIN SOLUTION\nx = 1")


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
    notebook = nbformat.reads(json.dumps(fill.filled(path)), as_version=4)  # exercises solved: checks must pass
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
