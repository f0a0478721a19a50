"""Every committed notebook has the course's anatomy (see CONTRIBUTING.md) and no outputs."""

import json
import pathlib
import re
import subprocess
import sys

import pytest

import utils

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REPO_PATH = utils.REPO_URL.removeprefix("https://github.com/")


def cells(path: pathlib.Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:2] == ["1_open_source_toolkit.ipynb", "2_inside_transformers.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_outputs_committed(path):
    for cell in cells(path):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, source(cell)[:80]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_badge_points_to_this_notebook_in_the_course_repo(path):
    first = source(cells(path)[0])
    badges = re.findall(r"https://colab\.research\.google\.com/github/([^)\s]+)", first)
    assert badges == [f"{REPO_PATH}/blob/main/notebooks/{path.name}"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_bootstrap_clones_the_course_repo_then_imports_utils(path):
    code = [source(c) for c in cells(path) if c["cell_type"] == "code"]
    bootstrap = code[0]
    assert f'REPO_URL = "{utils.REPO_URL}"' in bootstrap
    assert "requirements-colab.txt" in bootstrap and "import utils" in bootstrap
    assert '"google.colab" in sys.modules' in bootstrap


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_settings_cell_named_after_the_notebook(path):
    code = [source(c) for c in cells(path) if c["cell_type"] == "code"]
    settings_cells = [c for c in code if "utils.settings(" in c]
    assert len(settings_cells) == 1
    assert settings_cells[0].startswith("# Settings")
    assert re.search(rf'utils\.settings\(\s*"{re.escape(path.stem)}"', settings_cells[0])
    assert any(c.strip() == "utils.show_header(S)" for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_goals_run_time_and_exercises(path):
    markdown = "\n".join(source(c) for c in cells(path) if c["cell_type"] == "markdown")
    assert "## In this notebook" in markdown
    assert re.search(r"T4", markdown), "expected run time on a T4 is missing"
    assert re.search(r"(?i)## Exercises", markdown)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_solutions_are_tagged_and_collapsed_in_jupyter_and_on_colab(path):
    solutions = [c for c in cells(path) if "solution" in c["metadata"].get("tags", []) or "Solution" in source(c)[:20]]
    assert solutions
    for cell in solutions:
        assert "solution" in cell["metadata"].get("tags", [])
        assert cell["metadata"].get("jupyter", {}).get("source_hidden") is True  # JupyterLab
        # Colab ignores source_hidden: it hides the code of a "form" cell, titled by its #@title line.
        assert cell["metadata"].get("cellView") == "form"
        assert source(cell).startswith("#@title Solution")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_run_mode_branches_in_notebooks(path):
    code = "\n".join(source(c) for c in cells(path) if c["cell_type"] == "code")
    assert not re.search(r"(run_mode\(\)|S\.mode|COURSE_MODE)\s*(==|!=|in)", code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_opens_it_on_a_gpu(path):
    metadata = json.loads(path.read_text(encoding="utf-8"))["metadata"]
    assert metadata.get("accelerator") == "GPU"


@pytest.mark.parametrize("doc", ["README.md", "slides/deck.md"])
def test_student_links_open_the_student_versions(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    links = re.findall(r"https://colab\.research\.google\.com/github/([^)\s]+)", text)
    assert links, f"{doc} has no Colab links"
    for link in links:
        assert link.startswith(f"{REPO_PATH}/blob/main/notebooks/student/"), link
        assert (ROOT / link.split("/blob/main/", 1)[1]).exists(), link
    names = {link.rsplit("/", 1)[1] for link in links}
    assert names == {p.name for p in NOTEBOOKS}, f"{doc} does not link every notebook"


STUDENT_NOTEBOOKS = sorted((ROOT / "notebooks" / "student").glob("*.ipynb"))


def test_student_versions_are_committed_and_exactly_what_make_student_writes(tmp_path):
    from utils import student_versions

    assert [p.name for p in STUDENT_NOTEBOOKS] == [p.name for p in NOTEBOOKS]
    student_versions.main(["--out", str(tmp_path)])
    stale = [p.name for p in STUDENT_NOTEBOOKS if p.read_bytes() != (tmp_path / p.name).read_bytes()]
    assert not stale, f"notebooks/student/ is out of date for {stale}: run `make student` and commit the result"


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=lambda p: p.stem)
def test_student_version_has_no_solutions_and_its_badge_opens_itself(path):
    assert not [c for c in cells(path) if "solution" in c["metadata"].get("tags", []) or "Solution" in source(c)[:20]]
    badges = re.findall(r"https://colab\.research\.google\.com/github/([^)\s]+)", source(cells(path)[0]))
    assert badges == [f"{REPO_PATH}/blob/main/notebooks/student/{path.name}"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_bootstrap_on_colab_stops_with_a_fix_when_the_clone_fails(path, tmp_path):
    bootstrap = next(source(c) for c in cells(path) if c["cell_type"] == "code")
    # As on Colab, but the repository cannot be reached: a path that does not exist stands in for a
    # moved fork or a runtime without network, and the clone goes to a temporary folder.
    bootstrap = bootstrap.replace(f'REPO_URL = "{utils.REPO_URL}"', f'REPO_URL = "{tmp_path / "no-such-repo"}"')
    bootstrap = bootstrap.replace('pathlib.Path("/content/hands-on-transformers")', f'pathlib.Path("{tmp_path / "clone"}")')
    script = "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')\n" + bootstrap
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Could not download the course code" in result.stderr
    assert "Download ZIP" in result.stderr and "run this cell again" in result.stderr
    assert "Traceback" not in result.stderr  # one message, not a CalledProcessError


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_ends_with_expected_results_and_three_to_five_self_checks(path):
    import nbformat
    import self_checks  # tests/self_checks.py

    nb = nbformat.read(path, as_version=4)
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source.strip()]
    assert any(h.startswith("## Expected results") for h in headings), "no '## Expected results' section"
    assert "## Self-check" in headings, "no '## Self-check' section"
    checks = self_checks.self_check_cells(nb)
    assert 3 <= len(checks) <= 5, f"{len(checks)} self-check cells, expected 3 to 5"
    for number, cell in enumerate(checks, start=1):
        assert self_checks.shape_problems(cell) == [], cell.source[:200]
        assert cell.source.startswith(f"#@title Self-check {number}:"), "self-checks are numbered 1, 2, 3, ..."
        assert "solution" not in cell.metadata.get("tags", []), "a self-check stays in the student version"
