"""utils/metrics.py (metrics, the results log) and utils/timing.py (the Timer it logs)."""

import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import utils
from utils import metrics, modes

# A hand-checked example with three classes.
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]
# class 0: TP 2, FP 0, FN 1 -> precision 1,   recall 2/3, F1 = 2*1*(2/3)/(1+2/3) = 0.8
# class 1: TP 1, FP 1, FN 1 -> precision 1/2, recall 1/2, F1 = 1/2
# class 2: TP 1, FP 1, FN 0 -> precision 1/2, recall 1,   F1 = 2*(1/2)*1/(3/2) = 2/3
# F1 macro = (0.8 + 0.5 + 2/3) / 3 = (72 + 45 + 60) / 270 = 59/90 = 0.6556
# accuracy = F1 micro = 4/6; precision macro = (1 + 1/2 + 1/2) / 3 = 2/3;
# recall macro = balanced accuracy = (2/3 + 1/2 + 1) / 3 = 13/18
HAND = {"f1_macro": 59 / 90, "f1_micro": 4 / 6, "accuracy": 4 / 6, "balanced_accuracy": 13 / 18,
        "precision_macro": 2 / 3, "recall_macro": 13 / 18}
ID2LABEL = {0: "Military: Negative", 1: "Military: Positive", 2: "Other"}


@pytest.fixture
def results(monkeypatch, tmp_path):
    """The results log in a fresh tmp folder, ci mode; returns the log's path."""
    monkeypatch.setenv("COURSE_MODE", "ci")
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "results" / "results_log.csv"


# ---------------------------------------------------------------- metrics


def test_classification_metrics_hand_example():
    got = utils.classification_metrics(Y_TRUE, Y_PRED)
    assert got.keys() == HAND.keys()
    for name, value in HAND.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_classification_metrics_takes_arrays_and_tensors():
    assert utils.classification_metrics(np.array(Y_TRUE), torch.tensor(Y_PRED)) == utils.classification_metrics(
        Y_TRUE, Y_PRED)


def test_perfect_and_never_predicted_classes():
    assert utils.classification_metrics([0, 1, 2], [0, 1, 2])["f1_macro"] == 1.0
    # class 2 is never predicted: its precision counts as 0, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = utils.classification_metrics([0, 1, 2], [0, 1, 1])
    assert got["precision_macro"] == pytest.approx((1 + 0.5 + 0) / 3)


@pytest.mark.parametrize("y_true, y_pred, counts", [([0, 1, 2], [0, 1], "3 labels, 2 predictions"),
                                                    ([0], [0, 1], "1 labels, 2 predictions"),
                                                    ([], [], "0 labels, 0 predictions")])
def test_classification_metrics_needs_matching_lengths(y_true, y_pred, counts):
    with pytest.raises(ValueError, match=counts):
        utils.classification_metrics(y_true, y_pred)


def logits_for(predictions):
    logits = np.full((len(predictions), 3), -1.0)
    logits[np.arange(len(predictions)), predictions] = 2.0
    return logits


def test_compute_metrics_from_logits():
    got = utils.compute_metrics((logits_for(Y_PRED), np.array(Y_TRUE)))
    assert got["f1_macro"] == pytest.approx(59 / 90)
    assert got == utils.classification_metrics(Y_TRUE, Y_PRED)


def test_compute_metrics_from_a_tuple_of_outputs():
    hidden = np.zeros((len(Y_PRED), 3))  # e.g. hidden states after the logits
    got = utils.compute_metrics(((logits_for(Y_PRED), hidden), np.array(Y_TRUE)))
    assert got == utils.classification_metrics(Y_TRUE, Y_PRED)


def test_report_table_rows_and_values():
    table = utils.report_table(Y_TRUE, Y_PRED, ID2LABEL)
    assert list(table.index) == [*ID2LABEL.values(), "accuracy", "macro avg", "weighted avg"]
    assert table.loc[list(ID2LABEL.values()), "f1-score"].tolist() == [0.8, 0.5, 0.667]
    assert table.loc["macro avg", "f1-score"] == round(59 / 90, 3)
    assert table.loc[list(ID2LABEL.values()), "support"].tolist() == [3, 2, 1]


def test_report_table_lists_classes_absent_from_the_data():
    table = utils.report_table([0, 0, 1], [0, 1, 1], ID2LABEL)
    assert table.loc["Other", "support"] == 0 and table.loc["Other", "f1-score"] == 0


def test_metrics_table_strips_eval_prefixes_and_rounds():
    table = utils.metrics_table({"eval_f1_macro": 0.123456, "eval_loss": 1.5, "epoch": 3})
    assert table["value"].to_dict() == {"f1_macro": 0.123, "loss": 1.5, "epoch": 3}


# ---------------------------------------------------------------- the results log


def test_results_dir_follows_the_environment(results):
    assert utils.results_dir() == results.parent and results.parent.is_dir()
    assert metrics.results_log_path() == results


def test_log_result_appends_rows_with_one_header(results):
    first = utils.log_result("3_fine_tuning", "fine-tuning", "microsoft/deberta-v3-base", 100,
                             {"eval_f1_macro": 0.612345678, "eval_accuracy": 0.7, "eval_loss": 0.9,
                              "epoch": 2.0}, seconds=12.345, n_test=30, device="Tesla T4", mode="gpu")
    utils.log_result("4_nli", "nli", "microsoft/deberta-v3-base", 0, utils.classification_metrics(Y_TRUE, Y_PRED),
                     seconds=1, device="cpu", mode="cpu")
    lines = results.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and lines[0] == ",".join(metrics.RESULTS_COLUMNS)
    assert list(first.columns) == metrics.RESULTS_COLUMNS and len(first) == 1

    log = utils.read_results()
    assert list(log.columns) == metrics.RESULTS_COLUMNS and len(log) == 2
    row = log.iloc[0]
    assert (row["notebook"], row["approach"], row["n_train"], row["n_test"]) == ("3_fine_tuning", "fine-tuning", 100, 30)
    assert (row["f1_macro"], row["accuracy"], row["seconds"]) == (0.6123, 0.7, 12.3)
    assert pd.isna(row["balanced_accuracy"])  # not given: left empty
    assert (row["device"], row["mode"]) == ("Tesla T4", "gpu")
    assert "loss" not in log.columns and "eval_f1_macro" not in log.columns
    assert log.iloc[1]["f1_macro"] == round(59 / 90, 4) and log.iloc[1]["recall_macro"] == round(13 / 18, 4)
    assert pd.isna(log.iloc[1]["n_test"])


def test_log_result_shortens_stand_in_paths(results):
    utils.log_result("nb", "fine-tuning", str(modes.encoder_stand_in()), 60, {"f1_macro": 0.5}, 1.0, device="cpu")
    utils.log_result("nb", "generation", "/cache/hands-on-transformers/smollm2-135m-instruct", 60,
                     {"f1_macro": 0.5}, 1.0, device="cpu")
    assert utils.read_results()["model"].tolist() == ["all-MiniLM-L6-v2 (ci stand-in)",
                                                      "SmolLM2-135M-Instruct (ci stand-in)"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the default device name is the GPU's with one")
@pytest.mark.optional(reason="the default device name is the GPU's with one")
def test_log_result_defaults_to_the_current_device_and_mode(results):
    row = utils.log_result("nb", "a", "m", 10, {"f1_macro": 0.5}, 1.0).iloc[0]
    assert (row["device"], row["mode"]) == ("cpu", "ci")
    assert pd.Timestamp(row["time"]) <= pd.Timestamp.now()


def test_read_results_without_a_log(results):
    log = utils.read_results()
    assert log.empty and list(log.columns) == metrics.RESULTS_COLUMNS
    assert utils.read_results(mode="gpu").empty
    assert not results.exists()


def test_read_results_filters_by_mode(results):
    for mode in ("ci", "gpu", "ci", "cpu"):
        utils.log_result("nb", f"approach-{mode}", "m", 10, {"f1_macro": 0.5}, 1.0, device="cpu", mode=mode)
    ci = utils.read_results(mode="ci")
    assert ci["mode"].tolist() == ["ci", "ci"] and list(ci.index) == [0, 1]
    assert utils.read_results(mode="gpu")["approach"].tolist() == ["approach-gpu"]
    assert len(utils.read_results()) == 4


# A log written by an older course version: fewer columns, plus a column of the user's own.
OLD_LOG = ("time,notebook,approach,model,n_train,f1_macro,accuracy,seconds,device,note\n"
           "2025-05-01T10:00:00,3_tune_bert,BERT fine-tuned,microsoft/deberta-v3-base,1000,0.8123,0.85,600.0,"
           "Tesla T4,my first run\n")
# The current columns in another order (e.g. edited in a spreadsheet): the same count of fields,
# so appending below it put every value under a wrong name without any error.
REORDERED = [*metrics.RESULTS_COLUMNS[1:], metrics.RESULTS_COLUMNS[0]]
REORDERED_LOG = ",".join(REORDERED) + "\n" + ",".join({
    "time": "2025-05-02T09:00:00", "notebook": "5_nb", "approach": "old approach", "model": "m0", "n_train": "60",
    "n_test": "30", "f1_macro": "0.5", "seconds": "3.0", "device": "cpu", "mode": "ci"}.get(c, "") for c in REORDERED) + "\n"


def log_one(**changes):
    args = {"notebook": "4_tune_bert_nli", "approach": utils.APPROACH_NLI, "model": "m1", "n_train": 100,
            "metrics": {"f1_macro": 0.7, "accuracy": 0.75}, "seconds": 2.0, "n_test": 500, "device": "cpu",
            "mode": "cpu"}
    return utils.log_result(**{**args, **changes})


def test_a_log_with_older_columns_is_migrated_and_keeps_the_users_rows(results):
    results.parent.mkdir(parents=True)
    results.write_text(OLD_LOG, encoding="utf-8")
    log_one()
    log = utils.read_results()
    assert list(log.columns) == [*metrics.RESULTS_COLUMNS, "note"]
    old, new = log.iloc[0], log.iloc[1]
    assert (old["notebook"], old["n_train"], old["f1_macro"], old["accuracy"], old["seconds"], old["device"],
            old["note"]) == ("3_tune_bert", 1000, 0.8123, 0.85, 600.0, "Tesla T4", "my first run")
    assert pd.isna(old["mode"]) and pd.isna(old["n_test"])  # unknown for the old run: left empty
    assert (new["notebook"], new["model"], new["n_train"], new["n_test"], new["f1_macro"], new["accuracy"],
            new["device"], new["mode"]) == ("4_tune_bert_nli", "m1", 100, 500, 0.7, 0.75, "cpu", "cpu")
    assert pd.isna(new["note"])
    # The old row is written back as it was (as text: no 1000 -> 1000.0), under the new header.
    lines = results.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join([*metrics.RESULTS_COLUMNS, "note"])
    assert ",1000,," in lines[1] and "0.8123" in lines[1] and lines[1].endswith(",my first run")
    # No temporary file left; the lock file stays (writers share its inode: see metrics.results_log_lock).
    assert not [p for p in results.parent.iterdir() if p.name not in (results.name, f".{results.name}.lock")]

    log_one(model="m2")  # the log has the current columns now: a plain append
    assert utils.read_results()["model"].tolist() == ["microsoft/deberta-v3-base", "m1", "m2"]
    assert utils.read_results(mode="cpu")["model"].tolist() == ["m1", "m2"]


def test_a_log_with_reordered_columns_keeps_each_value_under_its_name(results):
    # Regression: the new row was appended in RESULTS_COLUMNS order below the other header.
    results.parent.mkdir(parents=True)
    results.write_text(REORDERED_LOG, encoding="utf-8")
    log_one()
    log = utils.read_results()
    assert list(log.columns) == metrics.RESULTS_COLUMNS
    assert log[["notebook", "model", "n_train", "f1_macro", "mode"]].values.tolist() == [
        ["5_nb", "m0", 60, 0.5, "ci"], ["4_tune_bert_nli", "m1", 100, 0.7, "cpu"]]
    assert log["time"].iloc[0] == "2025-05-02T09:00:00"


def test_an_empty_log_file_gets_a_header(results):
    results.parent.mkdir(parents=True)
    results.write_bytes(b"")
    log_one()
    assert utils.read_results()["model"].tolist() == ["m1"]


def test_reading_an_old_log_by_mode_before_the_next_run(results):
    results.parent.mkdir(parents=True)
    results.write_text(OLD_LOG, encoding="utf-8")
    log = utils.read_results()
    assert list(log.columns) == [*metrics.RESULTS_COLUMNS, "note"] and len(log) == 1
    assert utils.read_results(mode="gpu").empty  # no mode column yet: no run matches, no KeyError


def test_latest_results_keeps_the_latest_run_per_approach_and_size():
    log = pd.DataFrame({
        "time": ["2026-01-03T10:00:00", "2026-01-01T10:00:00", "2026-01-02T10:00:00", "2026-01-01T09:00:00",
                 "2026-01-04T10:00:00"],
        "approach": ["nli", "nli", "fine-tuning", "fine-tuning", "nli"],
        "model": ["new", "old", "ft-100", "ft-old", "nli-500"],
        "n_train": [100, 100, 100, 100, 500],
        "f1_macro": [0.7, 0.6, 0.8, 0.5, 0.9],
        "seconds": [1.0, 2.0, 3.0, 4.0, 5.0],
        "device": ["cpu"] * 5,
    })
    latest = utils.latest_results(log)
    assert list(latest.columns) == ["approach", "model", "n_train", "f1_macro", "seconds", "device"]
    assert latest[["approach", "n_train", "model", "f1_macro"]].values.tolist() == [
        ["fine-tuning", 100, "ft-100", 0.8], ["nli", 100, "new", 0.7], ["nli", 500, "nli-500", 0.9]]


def test_latest_results_takes_whole_rows():
    # Regression: groupby().last() filled a missing value of the latest run from an older run.
    log = pd.DataFrame({"time": ["2026-01-01T10:00:00", "2026-01-02T10:00:00"], "approach": ["nli", "nli"],
                        "model": ["old", "new"], "n_train": [0, 0], "f1_macro": [0.6, 0.7],
                        "accuracy": [0.65, np.nan], "seconds": [1.0, 2.0], "device": ["cpu", "cpu"]})
    latest = utils.latest_results(log, metric="accuracy")
    assert latest["model"].tolist() == ["new"] and pd.isna(latest["accuracy"].iloc[0])


def test_latest_results_of_runs_logged_in_the_same_second(results):
    for model in ("first", "second", "third"):
        utils.log_result("nb", "nli", model, 0, {"f1_macro": 0.5}, 1.0, device="cpu")
    log = utils.read_results()
    log["time"] = log["time"].iloc[0]  # same time stamp: the log's order decides
    assert utils.latest_results(log)["model"].tolist() == ["third"]


def test_latest_results_of_an_empty_log(results):
    empty = utils.read_results()
    assert utils.latest_results(empty).empty


# ---------------------------------------------------------------- Timer


def test_timer_measures_the_block():
    with utils.Timer() as timer:
        time.sleep(0.05)
        during = timer.seconds
        time.sleep(0.05)
    after = timer.seconds
    assert 0.05 <= during < after
    assert 0.1 <= after < 5
    time.sleep(0.02)
    assert timer.seconds == after  # frozen once the block ends
