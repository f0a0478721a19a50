"""Make the student versions of the notebooks: the same notebooks with the solutions taken out.

    python -m utils.student_versions            # writes notebooks/student/*.ipynb (committed)

The notebooks in notebooks/ are the instructors' versions; the README's badges open the student
versions in notebooks/student/, which are committed so that a link can reach them. A test fails
when they differ from what this command writes: rerun it after every change to a notebook.

Authors mark cells with tags (see CONTRIBUTING.md): `solution` cells are removed; `exercise`
cells (the stubs students fill in) stay and must raise NotImplementedError until filled in; they
carry the `nbval-skip` tag so the test run skips them. The Open-in-Colab badge is pointed at the
student version itself.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat

from .modes import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
STUDENT_DIR = NOTEBOOK_DIR / "student"


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
    """A copy of `nb` without solution cells and without outputs, its badge opening the copy."""
    check_exercise_cells(nb, name)
    student = nbformat.from_dict(nb)
    student.cells = [cell for cell in student.cells if "solution" not in tags(cell)]
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        elif cell.cell_type == "markdown":
            cell.source = cell.source.replace(f"/blob/main/notebooks/{name}", f"/blob/main/notebooks/student/{name}")
    return student


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=STUDENT_DIR)
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
