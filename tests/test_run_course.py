"""The headless course run executes notebooks for real and reports status, time and metric."""

import os

import nbformat
import pandas as pd
import pytest

import utils
from utils import run_course


def write_notebook(path, *sources, stub=None):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    if stub:  # an exercise stub, as in the course notebooks: tagged, and raising until filled in
        nb.cells.append(nbformat.v4.new_code_cell(stub, metadata={"tags": ["exercise", "nbval-skip"]}))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def course(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.setattr(run_course, "NOTEBOOK_DIR", notebooks)
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    return notebooks


def test_table_reports_ok_failed_and_the_logged_metric(course, tmp_path, capsys):
    log_cell = (
        "import os, sys; sys.path.insert(0, " + repr(str(run_course.REPO_ROOT)) + ")\n"
        "import utils\n"
        "utils.log_result('a_good', 'baseline', 'tfidf', 50, {'f1_macro': 0.625}, seconds=1.0)"
    )
    write_notebook(course / "a_good.ipynb", log_cell, stub="raise NotImplementedError('Exercise 1: ...')")
    write_notebook(course / "b_bad.ipynb", "x = 1", "raise ValueError('broken on purpose')")

    code = run_course.main(["--mode", "ci", "--out", str(tmp_path / "out"), "--timeout", "120"])

    assert code == 1
    table = pd.read_csv(tmp_path / "out" / "ci" / "summary.csv")
    assert list(table["notebook"]) == ["a_good", "b_bad"]
    assert table.loc[0, "status"] == "ok"
    assert table.loc[0, "key metric"] == "F1 macro 0.625 (baseline, n=50)"
    assert table.loc[1, "status"] == "FAILED: ValueError: broken on purpose"
    assert (table["seconds"] > 0).all()
    executed = nbformat.read(tmp_path / "out" / "ci" / "b_bad.ipynb", as_version=4)
    assert executed.cells[0].execution_count == 1  # the executed copy keeps its outputs
    assert "b_bad" in capsys.readouterr().out


def test_unknown_notebook_name_is_a_clear_error(course, tmp_path, capsys):
    write_notebook(course / "a_good.ipynb", "x = 1")
    with pytest.raises(SystemExit):
        run_course.main(["--only", "nope", "--out", str(tmp_path / "out")])
    assert "no such notebook" in capsys.readouterr().err


def test_a_notebook_that_logs_no_expected_result_fails(course, tmp_path):
    # 3_tune_bert must log the TF-IDF and the BERT rows; this one runs cleanly and logs only one.
    log_cell = (
        "import sys; sys.path.insert(0, " + repr(str(run_course.REPO_ROOT)) + ")\n"
        "import utils\n"
        "utils.log_result('3_tune_bert', utils.APPROACH_CLASSICAL, 'tfidf', 50, {'f1_macro': 0.5}, seconds=1.0)"
    )
    write_notebook(course / "3_tune_bert.ipynb", log_cell)
    write_notebook(course / "4_tune_bert_nli.ipynb", "x = 1")

    code = run_course.main(["--mode", "ci", "--out", str(tmp_path / "out"), "--timeout", "120"])

    assert code == 1
    table = pd.read_csv(tmp_path / "out" / "ci" / "summary.csv").set_index("notebook")
    assert table.loc["3_tune_bert", "status"] == f"FAILED: logged no result for {utils.APPROACH_BERT}"
    assert table.loc["4_tune_bert_nli", "status"].startswith("FAILED: logged no result for ")


def test_kernel_env_and_extra_cells_reach_the_run(tmp_path):
    path = tmp_path / "probe.ipynb"
    write_notebook(path, "import os")
    env = {**os.environ, "COURSE_PROBE_VALUE": "from-the-test", "COURSE_RESULTS_DIR": str(tmp_path / "results")}
    row = run_course.run_notebook(path, tmp_path, timeout=120, env=env,
                                  extra_cells=["print(os.environ['COURSE_PROBE_VALUE'])"])
    assert row["status"] == "ok"
    executed = nbformat.read(tmp_path / "probe.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["text"].strip() == "from-the-test"
