"""Make the student versions of the notebooks: the same notebooks with the solutions taken out.

    python -m utils.student_versions            # writes build/student/*.ipynb

Authors mark cells with tags (see CONTRIBUTING.md): `solution` cells are removed; `exercise`
cells (the stubs students fill in) stay and must raise NotImplementedError until filled in; they
carry the `nbval-skip` tag so the test run skips them.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat

from .modes import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def tags(cell: dict) -> list[str]:
    """The tags of a notebook cell (an empty list when it has none)."""
    return list(cell.get("metadata", {}).get("tags", []))


def check_exercise_cells(nb: nbformat.NotebookNode, name: str) -> None:
    """Raise ValueError when an exercise stub would not stop a student with a clear message."""
    for cell in nb.cells:
        if "exercise" in tags(cell) and cell.cell_type == "code":
            if "raise NotImplementedError(" not in cell.source:
                raise ValueError(f"{name}: exercise cell lacks `raise NotImplementedError(\"...\")`:\n{cell.source[:200]}")
            if "nbval-skip" not in tags(cell):
                raise ValueError(f"{name}: exercise cell lacks the `nbval-skip` tag:\n{cell.source[:200]}")


def student_version(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """A copy of `nb` without solution cells and without outputs."""
    check_exercise_cells(nb, name)
    student = nbformat.from_dict(nb)
    student.cells = [cell for cell in student.cells if "solution" not in tags(cell)]
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return student


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=REPO_ROOT / "build" / "student")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        student = student_version(nb, path.name)
        nbformat.write(student, args.out / path.name)
        removed = len(nb.cells) - len(student.cells)
        print(f"{path.name}: {removed} solution cell(s) removed -> {args.out / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
