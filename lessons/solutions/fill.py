"""Fill the lessons' exercise stubs with the reference solutions in this folder.

The stored lessons hold stubs: in an exercise cell, the code between the lines
``### BEGIN SOLUTION`` and ``### END SOLUTION`` only raises
``NotImplementedError``, and the check cell after it fails until the student
writes their own. ``lessons/solutions/NN_name.py`` holds the reference code
for each region of lesson ``NN_name.ipynb`` in order, regions separated by a
line ``### NEXT SOLUTION``. CI runs the lessons filled with them (tests/test_lessons.py).

Usage, from the repository root::

    python lessons/solutions/fill.py [OUT_DIR]   # default: lessons/solved/ (git-ignored)

writes a solved copy of every lesson to OUT_DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BEGIN, END, NEXT = "### BEGIN SOLUTION", "### END SOLUTION", "### NEXT SOLUTION"
HERE = Path(__file__).resolve().parent


def regions(source: str) -> list:
    """(start, end) line indices of every stub region of a cell's source; markers included.

    Raises
    ------
    ValueError
        For a BEGIN without its END, or an END without a BEGIN.
    """
    lines, found, start = source.splitlines(), [], None
    for i, line in enumerate(lines):
        if line.strip() == BEGIN:
            if start is not None:
                raise ValueError(f"line {i + 1}: {BEGIN} inside another region")
            start = i
        elif line.strip() == END:
            if start is None:
                raise ValueError(f"line {i + 1}: {END} without {BEGIN}")
            found.append((start, i))
            start = None
    if start is not None:
        raise ValueError(f"line {start + 1}: {BEGIN} without {END}")
    return found


def solutions_of(lesson: Path) -> list:
    """The reference code of each region of ``lesson``, in order (empty if it has none)."""
    path = HERE / f"{lesson.stem}.py"
    if not path.exists():
        return []
    blocks, current = [], []
    for line in path.read_text().splitlines():
        if line.strip() == NEXT:
            blocks.append("\n".join(current).strip("\n"))
            current = []
        else:
            current.append(line)
    blocks.append("\n".join(current).strip("\n"))
    return blocks


def filled(lesson: Path) -> dict:
    """The notebook of ``lesson`` with every stub region replaced by its reference solution.

    Raises
    ------
    ValueError
        If the lesson's regions and its solutions do not pair up one to one.
    """
    notebook = json.loads(lesson.read_text())
    solutions = solutions_of(lesson)
    used = 0
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        found = regions(source)
        if not found:
            continue
        lines = source.splitlines()
        for k in reversed(range(len(found))):  # from the last, so earlier line numbers hold
            start, end = found[k]
            index = used + k
            if index >= len(solutions):
                raise ValueError(f"{lesson.name}: stub region {index + 1} has no solution in {HERE.name}/")
            lines[start:end + 1] = solutions[index].splitlines()
        used += len(found)
        cell["source"] = "\n".join(lines)
    if used != len(solutions):
        raise ValueError(f"{lesson.name}: {used} stub regions but {len(solutions)} solutions")
    return notebook


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else HERE.parent / "solved"
    out.mkdir(parents=True, exist_ok=True)
    for lesson in sorted(HERE.parent.glob("*.ipynb")):
        (out / lesson.name).write_text(json.dumps(filled(lesson), indent=1, ensure_ascii=False) + "\n")
        print(f"{out / lesson.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
