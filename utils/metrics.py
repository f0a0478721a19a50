"""Metrics for every approach, and the results log that lets notebooks compare them."""

from __future__ import annotations

import datetime as dt
import os
import pathlib

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    f1_score,
    precision_score,
    recall_score,
)

from .modes import REPO_ROOT, model_name

# The approaches the course compares, as they are named in the results log.
APPROACH_CLASSICAL = "classical (TF-IDF + logistic regression)"
APPROACH_BERT = "BERT fine-tuned"
APPROACH_NLI_ZERO_SHOT = "BERT-NLI zero-shot"
APPROACH_NLI = "BERT-NLI fine-tuned"
APPROACH_LLM_ZERO_SHOT = "LLM zero-shot"
APPROACH_LLM_LORA = "LLM LoRA fine-tuned"

RESULTS_COLUMNS = ["time", "notebook", "approach", "model", "n_train", "n_test", "f1_macro", "f1_micro",
                   "accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "seconds", "device", "mode"]


def classification_metrics(y_true, y_pred) -> dict[str, float]:
    """F1 macro, F1 micro (= accuracy for single-label tasks), balanced accuracy, precision and
    recall macro. Macro scores weigh each class equally, so a rare class counts as much as "Other".
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0 or len(y_true) != len(y_pred):
        raise ValueError(f"Need as many predictions as labels, and at least one: got {len(y_true)} labels, "
                         f"{len(y_pred)} predictions.")
    return {
        "f1_macro": f1_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_micro": f1_score(y_true, y_pred, average="micro", zero_division=0),
        "accuracy": accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
        "precision_macro": precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall_macro": recall_score(y_true, y_pred, average="macro", zero_division=0),
    }


def compute_metrics(eval_pred) -> dict[str, float]:
    """`compute_metrics` for the Trainer: logits -> predicted class -> classification_metrics."""
    logits, labels = eval_pred
    logits = logits[0] if isinstance(logits, tuple) else logits
    return classification_metrics(labels, np.argmax(logits, axis=-1))


def report_table(y_true, y_pred, id2label: dict[int, str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, plus the macro and weighted averages."""
    ids = sorted(id2label)
    report = classification_report(y_true, y_pred, labels=ids, target_names=[id2label[i] for i in ids],
                                   output_dict=True, zero_division=0)
    return pd.DataFrame(report).T.round(3)


def metrics_table(metrics: dict[str, float]) -> pd.DataFrame:
    """One metrics dict as a small table (Trainer's "eval_" prefixes removed)."""
    clean = {k.removeprefix("eval_"): v for k, v in metrics.items()}
    return pd.DataFrame({"value": clean}).round(3)


def results_dir() -> pathlib.Path:
    """Folder of the results log (COURSE_RESULTS_DIR overrides; git ignores results/)."""
    path = pathlib.Path(os.environ.get("COURSE_RESULTS_DIR", REPO_ROOT / "results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def output_dir(name: str) -> pathlib.Path:
    """A folder under results_dir() for what a notebook saves (models, exports); git ignores it."""
    path = results_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_log_path() -> pathlib.Path:
    """The CSV file every notebook appends its results to."""
    return results_dir() / "results_log.csv"


def log_result(notebook: str, approach: str, model: str, n_train: int, metrics: dict[str, float],
               seconds: float, n_test: int | None = None, device: str | None = None,
               mode: str | None = None) -> pd.DataFrame:
    """Append one run to the results log and return it as a one-row table."""
    from .device import device as current_device, gpu_info
    from .modes import run_mode

    if device is None:
        gpu = gpu_info()
        device = gpu["name"] if gpu else current_device()
    clean = {k.removeprefix("eval_"): v for k, v in metrics.items()}
    row = {
        "time": dt.datetime.now().isoformat(timespec="seconds"),
        "notebook": notebook, "approach": approach, "model": model_name(model), "n_train": int(n_train),
        "n_test": n_test, **{k: round(float(clean[k]), 4) for k in RESULTS_COLUMNS if k in clean},
        "seconds": round(float(seconds), 1), "device": device, "mode": mode or run_mode(),
    }
    frame = pd.DataFrame([row], columns=RESULTS_COLUMNS)
    path = results_log_path()
    frame.to_csv(path, mode="a", header=not path.exists(), index=False)
    return frame


def read_results(mode: str | None = None) -> pd.DataFrame:
    """The results log as a table (empty, with the right columns, when nothing was logged yet).

    `mode` keeps only the runs of one run mode, so ci smoke runs never mix with real results.
    """
    path = results_log_path()
    if not path.exists():
        return pd.DataFrame(columns=RESULTS_COLUMNS)
    df = pd.read_csv(path)
    return df if mode is None else df[df["mode"] == mode].reset_index(drop=True)


def latest_results(df: pd.DataFrame, metric: str = "f1_macro") -> pd.DataFrame:
    """The latest run of each approach and training size: the table to compare approaches."""
    if df.empty:
        return df
    # Whole rows (groupby().last() would mix rows, taking each column's last non-missing value).
    latest = df.sort_values("time", kind="stable").drop_duplicates(["approach", "n_train"], keep="last")
    return latest[["approach", "model", "n_train", metric, "seconds", "device"]].sort_values(["n_train", "approach"])
