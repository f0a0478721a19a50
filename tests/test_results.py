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


# ---------------------------------------------------------------- imports that must not corrupt the log (issue 25)


def _log_rows_of_runtime_a() -> None:
    """Three rows as a notebook logs them, one without n_test (an empty cell in the CSV)."""
    log_bert_rows()
    utils.log_result("4_tune_bert_nli", utils.APPROACH_NLI_ZERO_SHOT, "m", 0, {"f1_macro": 0.3}, seconds=2.0,
                     mode="ci")


def test_a_truncated_export_is_refused_and_three_imports_of_the_intact_one_add_its_rows_once(log_dir, tmp_path,
                                                                                             monkeypatch):
    _log_rows_of_runtime_a()
    exported = utils.export_results(tmp_path / "carried.csv")
    text = exported.read_text(encoding="utf-8")
    truncated = tmp_path / "cut.csv"
    truncated.write_text(text[:text.rindex("\n", 0, len(text) - 1) + 25], encoding="utf-8")  # cut inside row 3
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "other-runtime"))
    # This runtime's own row has an empty n_test: pandas reads that column as floats ("30.0").
    utils.log_result("4_tune_bert_nli", utils.APPROACH_NLI, "m", 40, {"f1_macro": 0.6}, seconds=1.0, mode="ci")

    with pytest.raises(utils.ResultsFileError, match=r"cut\.csv has rows .*line 4: .*cut off"):
        utils.import_results(truncated)
    assert len(utils.read_results()) == 1  # nothing of the refused file came in
    added = [len(utils.import_results(exported)) for _ in range(3)]

    log = utils.read_results()
    assert added == [3, 0, 0]
    assert sorted(log["approach"]) == sorted([utils.APPROACH_NLI, utils.APPROACH_CLASSICAL, utils.APPROACH_BERT,
                                              utils.APPROACH_NLI_ZERO_SHOT])
    assert log["n_train"].tolist() == [40, 40, 40, 0]


def test_numbers_are_compared_as_numbers_and_an_empty_n_test_does_not_break_the_comparison(log_dir, tmp_path):
    _log_rows_of_runtime_a()  # the local log: n_test 30, 30 and empty
    exported = utils.export_results(tmp_path / "carried.csv")
    # The same rows after a round trip through a spreadsheet or pandas: 40 -> 40.0, 30 -> 30.0, 0.41 -> 0.410.
    edited = pd.read_csv(exported)
    edited["n_train"] = edited["n_train"].astype(float)
    edited.to_csv(tmp_path / "edited.csv", index=False, float_format="%.3f")
    assert ",40.000," in (tmp_path / "edited.csv").read_text(encoding="utf-8")
    assert utils.import_results(tmp_path / "edited.csv").empty
    assert utils.import_results(exported).empty
    assert len(utils.read_results()) == 3


def _export_line(**changes) -> str:
    row = {"time": "2026-03-01T10:00:00", "notebook": "3_tune_bert", "task": utils.DEFAULT_TASK,
           "approach": utils.APPROACH_BERT, "model": "m", "n_train": "40", "n_test": "30", "f1_macro": "0.5",
           "seconds": "1.0", "device": "cpu", "mode": "ci", **changes}
    return ",".join(row.get(c, "") for c in utils.metrics.RESULTS_COLUMNS)


@pytest.mark.parametrize("bad_line, message", [
    (_export_line(f1_macro="abc"), r"line 3: f1_macro 'abc' is not a number"),
    (_export_line(f1_macro="1.5"), r"line 3: f1_macro 1\.5 is not between 0 and 1"),
    (_export_line(n_train="forty"), r"line 3: n_train 'forty' is not a whole number"),
    (_export_line(n_train="40.5"), r"line 3: n_train '40\.5' is not a whole number"),
    (_export_line(n_test="-3"), r"line 3: n_test '-3' is not a whole number"),
    (_export_line(approach=""), r"line 3: approach is empty"),
    (_export_line(time="yesterday"), r"line 3: time 'yesterday' is not a date and time"),
    (_export_line(mode="c"), r"line 3: mode 'c' is not a run mode"),
    (_export_line() + ",surplus", r"line 3 has 17 fields, the header 16"),
], ids=["f1-text", "f1-range", "n_train-text", "n_train-fraction", "n_test-negative", "approach-empty", "time",
        "mode-cut", "surplus-field"])
def test_a_malformed_row_is_refused_with_its_line_and_nothing_is_imported(log_dir, tmp_path, bad_line, message):
    path = tmp_path / "carried.csv"
    path.write_text("\n".join([",".join(utils.metrics.RESULTS_COLUMNS), _export_line(model="good"), bad_line]) + "\n",
                    encoding="utf-8")
    with pytest.raises(utils.ResultsFileError, match=message):
        utils.import_results(path)
    assert utils.read_results().empty


# ---------------------------------------------------------------- two writers at once (issue 25)


def _append_rows(start, writer: int, n: int) -> None:
    """A notebook's log_result calls, as fast as they come, once `start` is set."""
    start.wait()
    for i in range(n):
        utils.log_result("3_tune_bert", f"writer {writer}", f"row {i}", 40, {"f1_macro": 0.5}, seconds=1.0, n_test=30,
                         device="cpu", mode="ci")


def _import_files(start, paths: list) -> None:
    """Another notebook importing exports while the rows above are appended."""
    start.wait()
    for path in paths:
        utils.import_results(path)


def test_two_writers_and_an_import_at_once_lose_no_row(log_dir, tmp_path):
    import multiprocessing

    exports = []
    for k in range(20):
        path = tmp_path / f"export-{k}.csv"
        path.write_text("\n".join([",".join(utils.metrics.RESULTS_COLUMNS),
                                   *[_export_line(approach="imported", model=f"file {k} row {j}") for j in range(5)]])
                        + "\n", encoding="utf-8")
        exports.append(path)
    # Real processes (forked: they start at once, with utils imported), on a log that does not exist yet: the
    # race to create the file and write its header is part of the test.
    context = multiprocessing.get_context("fork")
    start = context.Event()
    processes = [context.Process(target=_append_rows, args=(start, writer, 200)) for writer in (1, 2)]
    processes.append(context.Process(target=_import_files, args=(start, exports)))
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0]

    log = utils.read_results()
    lines = (log_dir / "results_log.csv").read_text(encoding="utf-8").splitlines()
    assert lines.count(",".join(utils.metrics.RESULTS_COLUMNS)) == 1 and len(lines) == 1 + 400 + 100
    counts = log.groupby("approach")["model"].agg(["count", "nunique"])
    assert counts.to_dict("index") == {"writer 1": {"count": 200, "nunique": 200},
                                       "writer 2": {"count": 200, "nunique": 200},
                                       "imported": {"count": 100, "nunique": 100}}
