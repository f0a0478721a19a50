"""The results log across runtimes: reference rows, export/import, Google Drive on Colab."""

from __future__ import annotations

import sys
import types

import pandas as pd
import pytest

import utils
from utils import results

COURSE = [utils.APPROACH_CLASSICAL, utils.APPROACH_BERT, utils.APPROACH_NLI_ZERO_SHOT, utils.APPROACH_NLI,
          utils.APPROACH_LLM_ZERO_SHOT, utils.APPROACH_LLM_LORA]


@pytest.fixture
def log_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def log_bert_rows():
    for approach, f1 in [(utils.APPROACH_CLASSICAL, 0.41), (utils.APPROACH_BERT, 0.52)]:
        utils.log_result("3_tune_bert", approach, "m", 40, {"f1_macro": f1, "accuracy": 0.7}, seconds=3.0,
                         n_test=30, mode="ci")


def test_a_fresh_log_shows_only_reference_rows_marked_as_such(log_dir):
    table = utils.with_reference_rows(utils.latest_results(utils.read_results()), COURSE)
    reference = utils.reference_results()
    assert len(table) == len(reference)  # every published figure, none invented
    assert table["source"].str.startswith("reference (Laurer et al. 2023)").all()
    bert = table[table["approach"] == utils.APPROACH_BERT].set_index("n_train")["f1_macro"]
    assert bert.to_dict() == {100: 0.547, 500: 0.656, 1000: 0.670, 2500: 0.685}
    assert not table["approach"].isin([utils.APPROACH_LLM_ZERO_SHOT, utils.APPROACH_LLM_LORA]).any()
    assert list(dict.fromkeys(table["approach"])) == COURSE[:4]  # in the course's order


def test_your_rows_replace_the_reference_for_their_approaches_only(log_dir):
    log_bert_rows()
    table = utils.with_reference_rows(utils.latest_results(utils.read_results()), COURSE)
    sources = table.groupby("approach")["source"].agg(set)
    assert sources[utils.APPROACH_BERT] == {utils.SOURCE_YOURS}
    assert sources[utils.APPROACH_CLASSICAL] == {utils.SOURCE_YOURS}
    assert all(s.startswith("reference") for s in sources[utils.APPROACH_NLI])
    assert table.loc[table["approach"] == utils.APPROACH_BERT, "f1_macro"].tolist() == [0.52]


def test_export_then_import_in_a_new_runtime_adds_the_rows_once(log_dir, tmp_path, monkeypatch):
    log_bert_rows()
    exported = utils.export_results(tmp_path / "carried.csv")
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "other-runtime"))
    utils.log_result("4_tune_bert_nli", utils.APPROACH_NLI, "m", 40, {"f1_macro": 0.6}, seconds=1.0, n_test=30, mode="ci")

    added = utils.import_results(exported)
    again = utils.import_results(exported)

    log = utils.read_results()
    assert len(added) == 2 and again.empty
    assert sorted(log["approach"]) == sorted([utils.APPROACH_NLI, utils.APPROACH_CLASSICAL, utils.APPROACH_BERT])


def test_importing_a_file_that_is_not_a_results_log_names_it(log_dir, tmp_path):
    bad = tmp_path / "grades.csv"
    bad.write_text("student,grade\nana,1\n", encoding="utf-8")
    with pytest.raises(utils.ResultsFileError, match=r"grades\.csv is not a course results log.*approach"):
        utils.import_results(bad)
    with pytest.raises(FileNotFoundError, match="No file at"):
        utils.import_results(tmp_path / "missing.csv")


def test_export_without_a_log_says_what_to_do(log_dir):
    with pytest.raises(FileNotFoundError, match="run a notebook that logs results first"):
        utils.export_results()


def fake_colab(monkeypatch, mount):
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)


def test_on_colab_the_log_moves_to_drive(log_dir, tmp_path, monkeypatch):
    mounted = []
    fake_colab(monkeypatch, lambda path: mounted.append(path))
    monkeypatch.setattr(results, "DRIVE_MOUNT", tmp_path / "drive")
    monkeypatch.setattr(results, "DRIVE_RESULTS_DIR", tmp_path / "drive" / "MyDrive" / "course" / "results")

    assert results.keep_results_on_drive() is True
    assert mounted == [str(tmp_path / "drive")]
    assert utils.metrics.results_log_path().parent == tmp_path / "drive" / "MyDrive" / "course" / "results"
    assert "lost when it ends" not in results.results_location()


def test_declined_drive_keeps_the_log_local_and_says_so(log_dir, monkeypatch):
    def decline(path):
        raise ValueError("mount failed")

    fake_colab(monkeypatch, decline)
    with pytest.warns(UserWarning, match="not mounted.*export_results"):
        assert results.keep_results_on_drive() is False
    assert "lost when it ends" in results.results_location()


def test_outside_colab_drive_is_left_alone(log_dir):
    assert results.keep_results_on_drive() is False
    assert results.results_location() == str(log_dir / "results_log.csv")


def test_the_header_says_where_the_log_is(log_dir, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    s = utils.settings("3_tune_bert", N_TEST=30, RESULTS_ON_DRIVE=utils.by_mode(gpu=True, cpu=False))
    table = utils.modes.header_table(s)
    assert table.loc["results log", ""] == str(log_dir / "results_log.csv")
    assert s.RESULTS_ON_DRIVE is False


# ---------------------------------------------------------------- one task at a time

TRADE = "manifesto-protectionism"


def test_another_task_never_shows_the_papers_military_figures(log_dir):
    fresh = utils.with_reference_rows(utils.latest_results(utils.read_results(task=TRADE)), COURSE, task=TRADE)
    assert fresh.empty  # data/paper_reference.csv holds the military task's figures only
    log_bert_rows()  # the military task's runs (the default task) in the same log
    mixed = utils.with_reference_rows(utils.latest_results(utils.read_results()), COURSE, task=TRADE)
    assert mixed.empty  # not even when the latest rows of both tasks are passed in
    utils.log_result("3_tune_bert", utils.APPROACH_BERT, "m", 40, {"f1_macro": 0.33}, seconds=1.0, n_test=30,
                     mode="ci", task=utils.load_task(TRADE))
    trade = utils.with_reference_rows(utils.latest_results(utils.read_results(task=TRADE)), COURSE, task=TRADE)
    assert trade[["approach", "f1_macro", "source"]].values.tolist() == [
        [utils.APPROACH_BERT, 0.33, utils.SOURCE_YOURS]]
    military = utils.with_reference_rows(utils.latest_results(utils.read_results()), COURSE)
    assert military.loc[military["approach"] == utils.APPROACH_BERT, "f1_macro"].tolist() == [0.52]
    assert utils.reference_results(task=TRADE).empty and len(utils.reference_results(task=utils.DEFAULT_TASK)) == 13


def test_a_log_from_before_tasks_counts_as_the_default_task_and_keeps_its_rows(log_dir):
    log_dir.mkdir(parents=True)
    old = pd.DataFrame([{"time": "2026-01-01T10:00:00", "notebook": "3_tune_bert", "approach": utils.APPROACH_BERT,
                         "model": "m", "n_train": 40, "n_test": 30, "f1_macro": 0.5, "mode": "ci"}])
    old.to_csv(log_dir / "results_log.csv", index=False)
    assert utils.read_results(task=utils.DEFAULT_TASK)["f1_macro"].tolist() == [0.5]
    assert utils.read_results(task=TRADE).empty
    utils.log_result("3_tune_bert", utils.APPROACH_BERT, "m", 40, {"f1_macro": 0.4}, seconds=1.0, mode="ci", task=TRADE)
    log = utils.read_results()
    assert log["task"].tolist() == [utils.DEFAULT_TASK, TRADE] and log["f1_macro"].tolist() == [0.5, 0.4]
    assert utils.read_results(mode="ci", task=TRADE)["f1_macro"].tolist() == [0.4]


def test_expected_results_judges_gpu_runs_against_the_paper_and_the_floor(log_dir):
    y_test = [0] * 91 + [1] * 7 + [2] * 2
    floor = utils.majority_class_f1_macro(y_test)
    assert floor == pytest.approx((2 * 0.91 / 1.91) / 3, abs=1e-3)  # F1 of "Other" only, over three classes
    for n, f1 in [(100, 0.50), (1000, floor + 0.01), (2500, 0.40)]:
        utils.log_result("3_tune_bert", utils.APPROACH_BERT, "m", n, {"f1_macro": f1}, seconds=1.0, n_test=100,
                         mode="gpu")
    table = utils.expected_results([utils.APPROACH_BERT], y_test, mode="gpu").set_index("n_train")
    assert table.loc[100, "verdict"] == "healthy"  # paper 0.547, within the gap
    assert table.loc[1000, "verdict"].startswith("broken?")
    assert table.loc[2500, "verdict"].startswith("low")  # paper 0.685
    assert table.loc[500, "verdict"] == "not run yet"
    assert table.loc[100, "paper (mean of 3 seeds)"] == pytest.approx(0.547)
    assert table.loc[100, "healthy from"] == pytest.approx(0.547 - results.HEALTHY_GAP)


def test_a_run_near_a_paper_figure_that_is_itself_near_the_floor_is_healthy(log_dir):
    """TF-IDF with 100 examples: 0.341 in the paper, barely above the floor of a 91 % majority class."""
    y_test = [0] * 8670 + [1] * 639 + [2] * 228  # the real test file's label counts
    floor = utils.majority_class_f1_macro(y_test)
    assert 0.341 < floor + results.BROKEN_MARGIN
    utils.log_result("3_tune_bert", utils.APPROACH_CLASSICAL, "m", 100, {"f1_macro": 0.33}, seconds=1.0,
                     n_test=100, mode="gpu")
    table = utils.expected_results([utils.APPROACH_CLASSICAL], y_test, mode="gpu").set_index("n_train")
    assert table.loc[100, "verdict"] == "healthy"
    assert table.loc[100, "healthy from"] == pytest.approx(floor + results.BROKEN_MARGIN, abs=1e-3)


def test_expected_results_does_not_judge_other_modes_and_other_tasks_get_no_paper_figures(log_dir):
    utils.log_result("3_tune_bert", utils.APPROACH_BERT, "m", 48, {"f1_macro": 0.2}, seconds=1.0, n_test=30,
                     mode="ci", task="manifesto-protectionism")
    table = utils.expected_results([utils.APPROACH_BERT], [0, 0, 1], task="manifesto-protectionism", mode="ci")
    assert list(table["n_train"]) == [48]
    assert table["paper (mean of 3 seeds)"].isna().all()
    assert table.loc[0, "verdict"].startswith("ci mode")
