"""Student versions: solutions removed, exercise stubs stop with a clear message."""

import pathlib

import nbformat
import pytest

from utils import student_versions

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def notebook(*cells):
    return nbformat.v4.new_notebook(cells=list(cells))


def code(source, *tags):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    return cell


STUB = 'raise NotImplementedError("Exercise 1: compute the F1 macro of your model")'


def test_solutions_are_removed_and_the_rest_kept_in_order():
    nb = notebook(code("x = 1"), code(STUB, "exercise", "nbval-skip"), code("# Solution\nx = 2", "solution"),
                  nbformat.v4.new_markdown_cell("## Reflection"))
    student = student_versions.student_version(nb)
    assert [c.source for c in student.cells] == ["x = 1", STUB, "## Reflection"]
    assert len(nb.cells) == 4  # the author's notebook is untouched


def test_exercise_without_a_raise_is_refused():
    nb = notebook(code("# your code here", "exercise", "nbval-skip"))
    with pytest.raises(ValueError, match="NotImplementedError"):
        student_versions.student_version(nb, "x.ipynb")


def test_exercise_without_nbval_skip_is_refused():
    with pytest.raises(ValueError, match="nbval-skip"):
        student_versions.student_version(notebook(code(STUB, "exercise")), "x.ipynb")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_course_notebook_has_exercises_and_its_student_version_no_solutions(path):
    nb = nbformat.read(path, as_version=4)
    student = student_versions.student_version(nb, path.name)
    assert any("exercise" in student_versions.tags(c) for c in student.cells), "no exercise stub"
    assert any("solution" in student_versions.tags(c) for c in nb.cells), "no solution to check the exercise"
    assert not any("solution" in student_versions.tags(c) or "Solution" in c.source[:20] for c in student.cells)


def test_main_writes_one_student_notebook_per_course_notebook(tmp_path):
    assert student_versions.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
