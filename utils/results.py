"""The results log across Colab runtimes: Google Drive, export and import, and reference rows.

Colab gives every notebook its own runtime, so a results log kept inside the runtime is gone
when notebook 4 or 7 wants notebook 3's rows. Three ways round it, from easy to manual:
- `RESULTS_ON_DRIVE=True` (the settings cell; on in gpu mode): the log lives on Google Drive;
- `export_results()` / `import_results()`: carry the log by hand, as a file;
- reference rows: where your own rows are missing, the comparison tables show the paper's
  figures instead (data/paper_reference.csv), marked as such in a `source` column.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import pathlib
import shutil
import tempfile
import time
import warnings

import pandas as pd

from .device import in_colab
from .metrics import RESULTS_COLUMNS, results_log_lock, results_log_path
from .modes import MODES, REPO_ROOT
from .task import DEFAULT_TASK, Task, task_name

DRIVE_MOUNT = pathlib.Path("/content/drive")
DRIVE_RESULTS_DIR = DRIVE_MOUNT / "MyDrive" / "hands-on-transformers" / "results"
REFERENCE_PATH = REPO_ROOT / "data" / "paper_reference.csv"
SOURCE_YOURS = "your run"


class ResultsFileError(ValueError):
    """A file that is not a course results log; the message says what is wrong with it."""


def keep_results_on_drive() -> bool:
    """On Colab, mount Google Drive and keep the results log (and saved models) there.

    Sets COURSE_RESULTS_DIR for this runtime, so every later notebook that does the same finds
    the same log. Returns False, with a warning that says what it means, outside Colab or when
    Drive is not mounted (the student declined, or it failed): the log then stays in the runtime.
    """
    if not in_colab():
        return False
    try:
        from google.colab import drive

        drive.mount(str(DRIVE_MOUNT))
        DRIVE_RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    except Exception as error:  # a declined permission, a time-out: the notebook goes on without Drive
        warnings.warn(
            f"Google Drive is not mounted ({type(error).__name__}: {error}). Your results stay in this runtime and are "
            "lost when it ends. To keep them, rerun this cell and allow access, or save the log with "
            "utils.export_results() at the end of the notebook.", stacklevel=2)
        return False
    os.environ["COURSE_RESULTS_DIR"] = str(DRIVE_RESULTS_DIR)
    return True


def results_location() -> str:
    """Where the results log is, in words, for the notebook header."""
    path = results_log_path()
    if in_colab() and not str(path).startswith(str(DRIVE_MOUNT)):
        return f"{path} (this runtime only: lost when it ends; utils.export_results() saves a copy)"
    return str(path)


def _check_log(df: pd.DataFrame, path: pathlib.Path) -> None:
    needed = ["time", "notebook", "approach", "model", "n_train", "f1_macro", "mode"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ResultsFileError(
            f"{path} is not a course results log: it lacks the column(s) {missing} (found: {list(df.columns)}). "
            "Pick a file written by utils.export_results(), or a results_log.csv from a results folder.")


def export_results(path: str | pathlib.Path | None = None) -> pathlib.Path:
    """Copy the results log to `path` (default: results-log-<date>-<time>.csv here) and return it.

    On Colab the copy is also downloaded to your computer; upload it in the next notebook's
    runtime with import_results().
    """
    source = results_log_path()
    if not source.exists():
        raise FileNotFoundError(f"No results log at {source} yet: run a notebook that logs results first.")
    target = pathlib.Path(path) if path is not None else pathlib.Path(f"results-log-{time.strftime('%Y%m%d-%H%M%S')}.csv")
    with results_log_lock(source):  # a row appended meanwhile is in the copy whole, or not at all
        shutil.copyfile(source, target)
    if in_colab():
        from google.colab import files

        files.download(str(target))
    return target


def import_results(path: str | pathlib.Path | None = None) -> pd.DataFrame:
    """Add the rows of an exported results log to this runtime's log; return the rows added.

    Rows already in the log are not added twice, so importing the same file again changes
    nothing; numbers count as the same whatever their spelling (40, 40.0). Every row is checked
    first: a file with a row that is cut off (an interrupted copy) or malformed is refused whole,
    with the line numbers, and nothing is added. Without `path`, on Colab, a file upload dialog
    asks for the file.
    """
    if path is None:
        if not in_colab():
            raise ValueError("Give the path of the exported results log: utils.import_results('results-log-....csv').")
        from google.colab import files

        uploaded = files.upload()  # {file name: bytes}, saved in the current folder
        if not uploaded:
            raise ValueError("No file was uploaded: run the cell again and pick the exported results log.")
        path = next(iter(uploaded))
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No file at {path}: check the name (and upload it first on Colab).")
    incoming = _read_export(path)
    # Under the log's lock from reading to replacing: a row that another process appends meanwhile
    # would otherwise be lost when the merged copy replaces the log.
    with results_log_lock() as target:
        current = _read_log_as_text(target)
        key = [c for c in RESULTS_COLUMNS if c in incoming.columns and c in current.columns]
        seen = {_row_key(row, key) for row in current[key].itertuples(index=False, name=None)}
        new = incoming[[_row_key(row, key) not in seen
                        for row in incoming[key].itertuples(index=False, name=None)]]
        if new.empty:
            return _typed(new)
        extra = [c for c in [*current.columns, *incoming.columns] if c not in RESULTS_COLUMNS]
        merged = pd.concat([current, new], ignore_index=True).reindex(columns=RESULTS_COLUMNS + list(dict.fromkeys(extra)))
        # As text, so the rows already in the log are written back exactly as they were (no 100 -> 100.0).
        # A temporary file renamed over the log: an interruption never leaves half a log.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".results_log.", suffix=".csv")
        os.close(fd)
        merged.fillna("").to_csv(tmp, index=False)
        os.replace(tmp, target)
    return _typed(new.reset_index(drop=True))


# How import_results checks an exported row: the columns that must be filled in, and the kind of
# value of each column (a score is a number from 0 to 1, a size a whole number from 0).
_FILLED = ("time", "notebook", "approach", "model", "n_train", "f1_macro")
_WHOLE_NUMBERS = ("n_train", "n_test")
_SCORES = ("f1_macro", "f1_micro", "accuracy", "balanced_accuracy", "precision_macro", "recall_macro")
_NUMBERS = (*_WHOLE_NUMBERS, *_SCORES, "seconds")
_SHOWN_PROBLEMS = 5


def _read_export(path: pathlib.Path) -> pd.DataFrame:
    """The rows of an exported log as text, every row checked; ResultsFileError naming the lines that are not right.

    Read with the csv module rather than pandas: pandas fills a row that is cut short with empty
    values without a word, and cannot say on which line of the file a row starts.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's byte-order mark
            reader = csv.reader(handle, strict=True)
            header, rows = next(reader, None), []
            line = reader.line_num
            for record in reader:
                rows.append((line + 1, record))
                line = reader.line_num  # a quoted value may span lines: the next row starts after this one ends
    except UnicodeDecodeError as error:
        raise ResultsFileError(f"{path} is not a CSV results log (it is not UTF-8 text: {error.reason} at byte "
                               f"{error.start}). Pick a file written by utils.export_results().") from None
    except csv.Error as error:
        raise ResultsFileError(f"{path} is not a CSV results log (line {reader.line_num} does not parse as CSV: "
                               f"{error}). Pick a file written by utils.export_results().") from None
    if not header:
        raise ResultsFileError(f"{path} is empty: pick a file written by utils.export_results().")
    header = [name.strip() for name in header]
    _check_log(pd.DataFrame(columns=header), path)
    problems = []
    rows = [(number, record) for number, record in rows if record]  # blank lines carry no row
    for index, (number, record) in enumerate(rows):
        if len(record) < len(header):
            cut = index == len(rows) - 1
            problems.append(f"line {number}: the row has {len(record)} of the header's {len(header)} fields"
                            + (", so the file looks cut off (an interrupted download or copy)" if cut else ""))
        elif len(record) > len(header):
            problems.append(f"line {number} has {len(record)} fields, the header {len(header)} (a value that holds "
                            "a comma must be in double quotes)")
        else:
            problems += [f"line {number}: {problem}" for problem in _row_problems(dict(zip(header, record)))]
    if problems:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS]) + (f"; and {len(problems) - _SHOWN_PROBLEMS} more"
                                                          if len(problems) > _SHOWN_PROBLEMS else "")
        raise ResultsFileError(f"{path} has rows that are not results (nothing was imported): {shown}. Export the log "
                               "again with utils.export_results() and import the new file, or fix these rows.")
    return pd.DataFrame([record for _, record in rows], columns=header, dtype=object)


def _row_problems(row: dict[str, str]) -> list[str]:
    """What is wrong with one exported row (column -> text), in words; [] when nothing is."""
    problems = [f"{column} is empty" for column in _FILLED if column in row and not row[column].strip()]
    for column in _NUMBERS:
        text = row.get(column, "").strip()
        if not text or f"{column} is empty" in problems:
            continue
        number = _number(text)
        if column in _WHOLE_NUMBERS:
            if number is None or not number.is_integer() or number < 0:
                problems.append(f"{column} {text!r} is not a whole number (0 or more)")
        elif number is None:
            problems.append(f"{column} {text!r} is not a number")
        elif column in _SCORES and not 0 <= number <= 1:
            problems.append(f"{column} {text} is not between 0 and 1")
        elif number < 0:
            problems.append(f"{column} {text} is below 0")
    time_text = row.get("time", "").strip()
    if time_text and _when(time_text) is None:
        problems.append(f"time {time_text!r} is not a date and time (e.g. 2026-03-01T10:00:00)")
    mode = row.get("mode", "").strip()
    if mode and mode not in MODES:  # empty: a row from before the log had a mode column
        problems.append(f"mode {mode!r} is not a run mode ({', '.join(MODES)})")
    return problems


def _number(text: str) -> float | None:
    """`text` as a finite number, or None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _when(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _read_log_as_text(path: pathlib.Path) -> pd.DataFrame:
    """This runtime's log, every value as the text in the file ("" when empty); no rows when there is no log."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=RESULTS_COLUMNS, dtype=object)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _row_key(values: tuple, columns: list[str]) -> tuple:
    """A row as import_results compares it: numbers as numbers (40 == 40.0), times as times, an empty task as
    the default task (rows logged before tasks), other text stripped; an empty value matches only an empty one."""
    key = []
    for column, value in zip(columns, values):
        text = "" if pd.isna(value) else str(value).strip()
        if column in _NUMBERS:
            number = _number(text)
            key.append(number if number is not None else text or None)
        elif column == "time":
            key.append(_when(text) or text)
        elif column == "task":
            key.append(text or DEFAULT_TASK)
        else:
            key.append(text)
    return tuple(key)


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    """Imported rows (text) with their number columns as numbers, as read_results gives them."""
    rows = rows.replace("", None)
    for column in _NUMBERS:
        if column in rows.columns:
            rows[column] = pd.to_numeric(rows[column])
    return rows


def reference_results(path: pathlib.Path = REFERENCE_PATH, task: Task | str | None = None) -> pd.DataFrame:
    """The paper's published figures (task, approach, model, n_train, f1_macro, seeds, source, detail).

    With `task` (a Task or its name), only that task's figures: none for a task the file has no
    figures of, such as your own.
    """
    from .class_results import read_reference

    reference = read_reference(path)
    return reference if task is None else reference[reference["task"] == task_name(task)].reset_index(drop=True)


def with_reference_rows(latest: pd.DataFrame, approaches: list[str], reference: pd.DataFrame | None = None,
                        task: Task | str | None = None) -> pd.DataFrame:
    """Your latest rows of `approaches` for `task`, and reference rows for the approaches you have not run.

    `latest` is utils.latest_results(...). Your rows get source = "your run"; for an approach
    with no row of yours, the paper's rows for the same task (if it reports that approach) take
    its place, with their provenance in `source`: a task the paper has no figures of gets none.
    One approach never mixes both. Rows come in the order of `approaches`, then by n_train.
    `task` is a Task or its name (default: the default task); rows of other tasks are left out.
    """
    name = task_name(task)
    reference = reference_results() if reference is None else reference
    if "task" in reference.columns:
        reference = reference[reference["task"].fillna(DEFAULT_TASK) == name]
    elif name != DEFAULT_TASK:  # figures without a task column are the paper's default-task figures
        reference = reference.iloc[0:0]
    if "task" in latest.columns:
        latest = latest[latest["task"].fillna(DEFAULT_TASK) == name]
    yours = latest[latest["approach"].isin(approaches)].assign(source=SOURCE_YOURS)
    missing = [a for a in approaches if a not in set(yours["approach"])]
    stand_in = reference[reference["approach"].isin(missing)]
    stand_in = stand_in.assign(source="reference (Laurer et al. 2023): " + stand_in["model"] + ", mean of "
                                      + stand_in["seeds"].astype(str) + " seed(s)")
    columns = ["approach", "model", "n_train", "f1_macro", "seconds", "device", "source"]
    table = pd.concat([yours.reindex(columns=columns), stand_in.reindex(columns=columns)], ignore_index=True)
    order = table["approach"].map({a: i for i, a in enumerate(approaches)})
    return table.assign(order=order).sort_values(["order", "n_train"]).drop(columns="order").reset_index(drop=True)


# How far below the paper's mean a healthy gpu-mode run may land. The paper's figures are means of
# 3 seeds, each size trained with the epochs and learning rate a hyper-parameter search chose for it
# (data/paper_reference.csv lists them); the course trains one seed with fixed settings, and one seed
# alone moves F1 macro by several points at small sizes. A judgement, not a measurement: it separates
# "a bit under-trained" from "something is wrong", it does not grade a run.
HEALTHY_GAP = 0.15
# A run within this of always predicting the most common class has learnt next to nothing.
BROKEN_MARGIN = 0.05


def majority_class_f1_macro(y_test) -> float:
    """F1 macro of always predicting the most common test label: the score of a model that learnt nothing."""
    from sklearn.metrics import f1_score

    labels = pd.Series(list(y_test))
    if labels.empty:
        raise ValueError("No test labels: pass the test split's label ids (e.g. test['label']).")
    return float(f1_score(labels, [labels.mode()[0]] * len(labels), average="macro", zero_division=0))


def expected_results(approaches: list[str], y_test, task: Task | str | None = None,
                     mode: str | None = None) -> pd.DataFrame:
    """What healthy numbers look like: your latest F1 macro per approach and size next to the paper's
    figure, the lowest healthy score (`HEALTHY_GAP` below the paper, never below the broken line) and
    the learnt-nothing floor, with a verdict in gpu mode (other modes use smaller models or samples,
    so their numbers are not comparable to the paper and get no verdict). A run within
    `BROKEN_MARGIN` of the floor is "broken?", unless it is within `HEALTHY_GAP` of the paper.

    `y_test` are the test split's label ids (for the floor); `mode` defaults to the current run mode.
    """
    from .metrics import latest_results, read_results
    from .modes import run_mode

    mode = mode or run_mode()
    floor = majority_class_f1_macro(y_test)
    yours = latest_results(read_results(mode=mode, task=task))
    yours = yours[yours["approach"].isin(approaches)] if not yours.empty else yours
    paper = reference_results(task=task)
    paper = paper[paper["approach"].isin(approaches)][["approach", "n_train", "f1_macro"]]
    table = pd.merge(yours.reindex(columns=["approach", "n_train", "f1_macro"]) if not yours.empty
                     else pd.DataFrame(columns=["approach", "n_train", "f1_macro"]),
                     paper.rename(columns={"f1_macro": "paper (mean of 3 seeds)"}),
                     on=["approach", "n_train"], how="outer").rename(columns={"f1_macro": "yours"})
    table["n_train"] = table["n_train"].astype(int)
    table["healthy from"] = (table["paper (mean of 3 seeds)"] - HEALTHY_GAP).clip(lower=floor + BROKEN_MARGIN)
    table["learnt-nothing floor"] = round(floor, 3)

    def verdict(row) -> str:
        if pd.isna(row["yours"]):
            return "not run yet"
        if mode != "gpu":
            return f"{mode} mode: not comparable with the paper"
        paper = row["paper (mean of 3 seeds)"]
        # Near the paper's figure is healthy even where that figure itself is close to the floor
        # (TF-IDF with 100 examples, in the paper too).
        if not pd.isna(paper) and row["yours"] >= paper - HEALTHY_GAP:
            return "healthy"
        if row["yours"] <= floor + BROKEN_MARGIN:
            return "broken? no better than always predicting the most common class"
        if pd.isna(paper):
            return "learnt something (the paper has no figure for this size)"
        return "low: check epochs, learning rate and the warnings above"

    table["verdict"] = table.apply(verdict, axis=1)
    order = {a: i for i, a in enumerate(approaches)}
    table = table.assign(order=table["approach"].map(order)).sort_values(["order", "n_train"]).drop(columns="order")
    return table.reset_index(drop=True).round(3)
