"""utils.class_results: 20 synthetic students' results logs with a known spread -> table and plot."""

import pathlib

import numpy as np
import pandas as pd
import pytest

import utils
from utils import class_results

# What each synthetic student gets before their own offset: approach -> {training size: F1 macro}.
BASE = {
    utils.APPROACH_CLASSICAL: {100: 0.34, 1000: 0.57},
    utils.APPROACH_BERT: {100: 0.55, 1000: 0.67},
    utils.APPROACH_NLI_ZERO_SHOT: {0: 0.59},
    utils.APPROACH_NLI: {100: 0.65, 1000: 0.72},
}
N_STUDENTS = 20
# Student k is off by (k - 9.5) hundredths: the median is the base value, the range 0.19 around it.
OFFSETS = [round((k - 9.5) / 100, 3) for k in range(N_STUDENTS)]


def write_student_logs(folder: pathlib.Path, monkeypatch) -> None:
    """One results log per student, written by utils.log_result itself (the real file format)."""
    for k, offset in enumerate(OFFSETS):
        monkeypatch.setenv("COURSE_RESULTS_DIR", str(folder / f"student{k + 1:02d}"))
        if k == 0:  # a first, worse run that the student then reran: the rerun must count, not this one
            utils.log_result("3_tune_bert", utils.APPROACH_BERT, "microsoft/deberta-v3-base", 100,
                             {"f1_macro": 0.01}, seconds=1, device="Tesla T4", mode="gpu")
        if k == 1:  # a ci smoke run, which a merge of gpu runs must leave out
            utils.log_result("3_tune_bert", utils.APPROACH_BERT, "stand-in", 100, {"f1_macro": 0.99},
                             seconds=1, device="cpu", mode="ci")
        for approach, sizes in BASE.items():
            for n_train, f1 in sizes.items():
                utils.log_result("nb", approach, "model", n_train, {"f1_macro": f1 + offset}, seconds=1,
                                 device="Tesla T4", mode="gpu")


@pytest.fixture()
def logs(tmp_path, monkeypatch) -> pathlib.Path:
    folder = tmp_path / "collected"
    write_student_logs(folder, monkeypatch)
    return folder


def test_twenty_logs_give_the_known_medians_and_ranges(logs):
    runs, skipped = class_results.merge_logs([logs])
    assert skipped == []
    assert runs["student"].nunique() == N_STUDENTS
    summary = class_results.summarise(runs).set_index(["approach", "n_train"])
    assert len(summary) == sum(len(sizes) for sizes in BASE.values())
    for approach, sizes in BASE.items():
        for n_train, f1 in sizes.items():
            row = summary.loc[(approach, n_train)]
            assert row["students"] == N_STUDENTS
            assert row["median"] == pytest.approx(f1, abs=1e-9)
            assert row["min"] == pytest.approx(f1 + min(OFFSETS), abs=1e-9)
            assert row["max"] == pytest.approx(f1 + max(OFFSETS), abs=1e-9)
            assert row["range"] == pytest.approx(max(OFFSETS) - min(OFFSETS), abs=1e-9)
    # The course's order, not the alphabet's.
    assert list(dict.fromkeys(summary.reset_index()["approach"])) == list(BASE)


def test_reruns_replace_earlier_runs_and_other_modes_are_left_out(logs):
    runs, _ = class_results.merge_logs([logs])
    bert_100 = runs[(runs["approach"] == utils.APPROACH_BERT) & (runs["n_train"] == 100)].set_index("student")
    assert bert_100.loc["student01/results_log", "f1_macro"] == pytest.approx(0.55 + OFFSETS[0])
    assert (runs["mode"] == "gpu").all()
    ci_runs, _ = class_results.merge_logs([logs], mode="ci")
    assert ci_runs["f1_macro"].tolist() == [0.99]
    with pytest.raises(class_results.ResultsLogError, match=r"No run of mode 'cpu'.*modes found: \['ci', 'gpu'\]"):
        class_results.merge_logs([logs], mode="cpu")


def test_the_command_writes_the_table_and_a_non_empty_plot(logs, tmp_path, capsys):
    out = tmp_path / "out"
    assert class_results.main([str(logs), "--out", str(out)]) == 0
    table = pd.read_csv(out / "class_results.csv")
    assert list(table.columns) == class_results.SUMMARY_COLUMNS and len(table) == 7
    plot = out / "class_results.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000
    per_approach = sorted(p.name for p in out.glob("class_results_*.png"))
    assert per_approach == sorted(f"class_results_{class_results.slug(a)}.png" for a in BASE)
    assert f"{N_STUDENTS} students" in capsys.readouterr().out


def test_a_file_that_is_not_a_results_log_is_named_and_skipped_only_on_request(logs, tmp_path, capsys):
    bad = logs / "zz_wrong_file.csv"
    bad.write_text("name,grade\nanna,1\n", encoding="utf-8")
    with pytest.raises(class_results.ResultsLogError, match=r"zz_wrong_file\.csv is not a results log.*f1_macro"):
        class_results.merge_logs([logs])
    assert class_results.main([str(logs), "--out", str(tmp_path / "x")]) == 2
    assert "zz_wrong_file.csv" in capsys.readouterr().err
    runs, skipped = class_results.merge_logs([logs], skip_bad=True)
    assert [path.name for path, _ in skipped] == ["zz_wrong_file.csv"]
    assert runs["student"].nunique() == N_STUDENTS


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\xff\xfe\x00\x01binary\x00", "not a readable CSV"),
    ("approach,n_train,f1_macro\n".encode(), "no runs"),
    ("approach,n_train,f1_macro\nBERT fine-tuned,100,1.7\n".encode(), r"row\(s\) \[2\]"),
    ("approach,n_train,f1_macro\nBERT fine-tuned,ten,0.5\n".encode(), "not a whole number"),
])
def test_broken_logs_are_explained(tmp_path, content, message):
    path = tmp_path / "log.csv"
    path.write_bytes(content)
    with pytest.raises(class_results.ResultsLogError, match=message):
        class_results.read_log(path)


def test_missing_paths_and_empty_folders_are_explained(tmp_path):
    with pytest.raises(class_results.ResultsLogError, match="does not exist"):
        class_results.find_logs([tmp_path / "nowhere"])
    with pytest.raises(class_results.ResultsLogError, match="No CSV file"):
        class_results.find_logs([tmp_path])


def test_students_are_named_by_file_or_by_folder():
    assert class_results.student_names([pathlib.Path("a/anna.csv"), pathlib.Path("a/ben.csv")]) == ["anna", "ben"]
    names = class_results.student_names([pathlib.Path("/x/anna/results_log.csv"), pathlib.Path("/x/ben/results_log.csv")])
    assert names == ["anna/results_log", "ben/results_log"]


def test_the_paper_reference_has_a_source_per_row_and_matches_utils_nli():
    reference = class_results.read_reference()
    assert reference["source"].str.contains("Laurer").all() and reference["detail"].notna().all()
    merged = utils.PAPER_REFERENCE.merge(reference, on=["approach", "n_train"], suffixes=("_nli", "_csv"))
    assert len(merged) == len(utils.PAPER_REFERENCE)  # every figure of utils.nli is in the CSV ...
    assert np.allclose(merged["f1_macro_nli"], merged["f1_macro_csv"])  # ... with the same value
    assert set(reference["approach"]) <= set(class_results.COURSE_ORDER)


def test_reference_rows_of_a_comparison_table_are_not_counted_as_a_students(tmp_path):
    path = tmp_path / "anna.csv"
    pd.DataFrame({"approach": [utils.APPROACH_BERT, utils.APPROACH_NLI], "n_train": [1000, 1000],
                  "f1_macro": [0.61, 0.725], "source": ["your run", "reference (Laurer et al. 2023): ..."]}
                 ).to_csv(path, index=False)
    runs, _ = class_results.merge_logs([path], mode="any")
    assert runs[["approach", "f1_macro"]].values.tolist() == [[utils.APPROACH_BERT, 0.61]]


def test_a_merge_keeps_one_task_and_old_logs_count_as_the_default_task(logs, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(logs / "student01"))  # a student who also ran the second task
    utils.log_result("3_tune_bert", utils.APPROACH_BERT, "m", 100, {"f1_macro": 0.31}, seconds=1, device="Tesla T4",
                     mode="gpu", task="manifesto-protectionism")
    old = logs / "old-student.csv"  # a log from before tasks: no task column
    pd.DataFrame({"approach": [utils.APPROACH_BERT], "n_train": [100], "f1_macro": [0.5], "mode": ["gpu"]}).to_csv(old)
    military, _ = class_results.merge_logs([logs])
    assert 0.31 not in military["f1_macro"].tolist() and military["student"].nunique() == N_STUDENTS + 1
    trade, _ = class_results.merge_logs([logs], task="manifesto-protectionism")
    assert trade[["student", "f1_macro"]].values.tolist() == [["student01/results_log", 0.31]]
    with pytest.raises(class_results.ResultsLogError, match=r"No run of the task 'council-topics' in the logs "
                                                            r"\(tasks found: \['manifesto-military', "
                                                            r"'manifesto-protectionism'\]\)"):
        class_results.merge_logs([logs], task="council-topics")
