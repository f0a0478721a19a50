"""Every committed notebook has the course's anatomy (see CONTRIBUTING.md) and no outputs."""

import json
import pathlib
import re

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
def test_solutions_are_tagged_and_collapsed(path):
    for cell in cells(path):
        if source(cell).startswith("# Solution"):
            assert "solution" in cell["metadata"].get("tags", [])
            assert cell["metadata"].get("jupyter", {}).get("source_hidden") is True


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_run_mode_branches_in_notebooks(path):
    code = "\n".join(source(c) for c in cells(path) if c["cell_type"] == "code")
    assert not re.search(r"(run_mode\(\)|S\.mode|COURSE_MODE)\s*(==|!=|in)", code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_opens_it_on_a_gpu(path):
    metadata = json.loads(path.read_text(encoding="utf-8"))["metadata"]
    assert metadata.get("accelerator") == "GPU"


def test_readme_badges_agree_with_the_repo_url():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"https://colab\.research\.google\.com/github/([^)\s]+)", readme)
    assert links, "README has no Colab badges"
    for link in links:
        assert link.startswith(f"{REPO_PATH}/blob/main/notebooks/")
        assert (ROOT / link.split("/blob/main/", 1)[1]).exists(), link
