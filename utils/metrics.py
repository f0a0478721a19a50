"""Metrics for every approach, and the results log that lets notebooks compare them."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import os
import pathlib
from typing import Iterator

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
from .task import DEFAULT_TASK, Task, task_name

# The approaches the course compares, as they are named in the results log.
APPROACH_CLASSICAL = "classical (TF-IDF + logistic regression)"
APPROACH_BERT = "BERT fine-tuned"
APPROACH_NLI_ZERO_SHOT = "BERT-NLI zero-shot"
APPROACH_NLI = "BERT-NLI fine-tuned"
APPROACH_LLM_ZERO_SHOT = "LLM zero-shot"
APPROACH_LLM_LORA = "LLM LoRA fine-tuned"

# The course's metric as an `evaluate` module in the repository: `evaluate.load(str(COURSE_METRIC_DIR))`
# loads it from disk (no download); tests keep it in agreement with classification_metrics.
COURSE_METRIC_DIR = REPO_ROOT / "metrics" / "course_metric"

RESULTS_COLUMNS = ["time", "notebook", "task", "approach", "model", "n_train", "n_test", "f1_macro", "f1_micro",
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


# How long a writer waits for another one; every holder only reads or writes one small file.
LOG_LOCK_TIMEOUT = 120


@contextlib.contextmanager
def results_log_lock(path: pathlib.Path | None = None) -> Iterator[pathlib.Path]:
    """Hold the results log's lock while reading or writing it; yields the log's path.

    Every writer (log_result, import_results) and reader takes it, so two notebooks or commands that
    log at once never lose a row or read half of one. The lock is a sibling file (`.results_log.csv.lock`),
    not the log itself: import_results replaces the log by renaming, and a lock on the old file would
    not hold the new one. It is an advisory `flock` (the `filelock` library; a soft lock file where the
    file system has no flock): the kernel drops it when its process ends, so a killed notebook never
    leaves the log locked. On Colab the log is on Google Drive, a FUSE mount: flock there holds
    between the processes of one runtime (Linux keeps a FUSE file system's flocks in the kernel when
    the file system does not handle them), but not between two runtimes, each with its own mount and
    its own kernel: Drive's sync decides what their concurrent writes become.
    """
    import filelock

    path = path or results_log_path()
    lock = filelock.FileLock(str(path.with_name(f".{path.name}.lock")))
    try:
        lock.acquire(timeout=LOG_LOCK_TIMEOUT)
    except filelock.Timeout:
        raise TimeoutError(f"The results log {path} has been locked by another process for {LOG_LOCK_TIMEOUT} s "
                           f"(lock file {lock.lock_file}). Wait for the other notebook or command to finish, "
                           "then run this cell again.") from None
    try:
        yield path
    finally:
        lock.release()


def log_result(notebook: str, approach: str, model: str, n_train: int, metrics: dict[str, float],
               seconds: float, n_test: int | None = None, device: str | None = None,
               mode: str | None = None, task: Task | str | None = None) -> pd.DataFrame:
    """Append one run of `task` (a Task or its name; default: the default task) to the results log
    and return it as a one-row table."""
    from .device import device as current_device, gpu_info
    from .modes import run_mode

    if device is None:
        gpu = gpu_info()
        device = gpu["name"] if gpu else current_device()
    clean = {k.removeprefix("eval_"): v for k, v in metrics.items()}
    row = {
        "time": dt.datetime.now().isoformat(timespec="seconds"),
        "notebook": notebook, "task": task_name(task), "approach": approach, "model": model_name(model),
        "n_train": int(n_train),
        "n_test": n_test, **{k: round(float(clean[k]), 4) for k in RESULTS_COLUMNS if k in clean},
        "seconds": round(float(seconds), 1), "device": device, "mode": mode or run_mode(),
    }
    frame = pd.DataFrame([row], columns=RESULTS_COLUMNS)
    with results_log_lock() as path:  # checking for the header and appending are one step for other writers
        _append_to_log(path, frame)
    return frame


def _append_to_log(path: pathlib.Path, frame: pd.DataFrame) -> None:
    """Append `frame` (RESULTS_COLUMNS) to the log at `path`, whatever columns the log has.
    The caller holds results_log_lock(path).

    A log written with other columns (an older course version, or edited by hand) is rewritten
    with RESULTS_COLUMNS first and the user's extra columns after, every row kept: appending
    below a different header would put values under the wrong column names without a word.
    """
    if not path.exists() or path.stat().st_size == 0:
        frame.to_csv(path, index=False)
        return
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    if header == RESULTS_COLUMNS:
        frame.to_csv(path, mode="a", header=False, index=False)
        return
    # As text, so the user's rows are written back exactly as they were (no 100 -> 100.0).
    old = pd.read_csv(path, dtype=str, keep_default_na=False)
    extra = [c for c in old.columns if c not in RESULTS_COLUMNS]
    merged = pd.concat([old, frame.astype(object)], ignore_index=True).reindex(columns=RESULTS_COLUMNS + extra)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    merged.to_csv(tmp, index=False)
    os.replace(tmp, path)  # atomic: an interrupted rewrite never loses the log


def read_results(mode: str | None = None, task: Task | str | None = None) -> pd.DataFrame:
    """The results log as a table (empty, with the right columns, when nothing was logged yet).

    `mode` keeps only the runs of one run mode, so ci smoke runs never mix with real results;
    `task` (a Task or its name) only the runs of one task, so no comparison mixes two tasks.
    Rows logged before the log had a task column count as the default task's.
    """
    path = results_log_path()
    if not path.exists():  # nothing to read, and no lock file made by a mere reader
        return pd.DataFrame(columns=RESULTS_COLUMNS)
    with results_log_lock(path):  # never half of a row that another process is appending
        df = pd.read_csv(path)
    # A log from an older version may lack some columns (log_result adds them on its next write).
    df = df.reindex(columns=RESULTS_COLUMNS + [c for c in df.columns if c not in RESULTS_COLUMNS])
    df["task"] = df["task"].fillna(DEFAULT_TASK)  # the only task there was before tasks were data
    if mode is not None:
        df = df[df["mode"] == mode]
    if task is not None:
        df = df[df["task"] == task_name(task)]
    return df.reset_index(drop=True)


def latest_results(df: pd.DataFrame, metric: str = "f1_macro") -> pd.DataFrame:
    """The latest run of each approach and training size (of each task, when `df` holds several):
    the table to compare approaches. Pass the runs of one task (read_results(task=...)) to compare."""
    if df.empty:
        return df
    # Whole rows (groupby().last() would mix rows, taking each column's last non-missing value).
    task = ["task"] if "task" in df.columns else []
    latest = df.sort_values("time", kind="stable").drop_duplicates([*task, "approach", "n_train"], keep="last")
    columns = [*task, "approach", "model", "n_train", metric, "seconds", "device"]
    return latest[columns].sort_values(["n_train", "approach"])
