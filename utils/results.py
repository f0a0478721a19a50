"""The results log across Colab runtimes: Google Drive, export and import, and reference rows.

Colab gives every notebook its own runtime, so a results log kept inside the runtime is gone
when notebook 4 or 7 wants notebook 3's rows. Three ways round it, from easy to manual:
- `RESULTS_ON_DRIVE=True` (the settings cell; on in gpu mode): the log lives on Google Drive;
- `export_results()` / `import_results()`: carry the log by hand, as a file;
- reference rows: where your own rows are missing, the comparison tables show the paper's
  figures instead (data/paper_reference.csv), marked as such in a `source` column.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
import time
import warnings

import pandas as pd

from .device import in_colab
from .metrics import RESULTS_COLUMNS, results_log_path
from .modes import REPO_ROOT
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
    shutil.copyfile(source, target)
    if in_colab():
        from google.colab import files

        files.download(str(target))
    return target


def import_results(path: str | pathlib.Path | None = None) -> pd.DataFrame:
    """Add the rows of an exported results log to this runtime's log; return the rows added.

    Rows already in the log are not added twice, so importing the same file again changes
    nothing. Without `path`, on Colab, a file upload dialog asks for the file.
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
    try:
        incoming = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ResultsFileError(f"{path} is not a CSV results log ({type(error).__name__}: {error}).") from None
    _check_log(incoming, path)
    target = results_log_path()
    current = pd.read_csv(target) if target.exists() else pd.DataFrame(columns=RESULTS_COLUMNS)
    columns = list(current.columns) + [c for c in incoming.columns if c not in current.columns]
    key = [c for c in RESULTS_COLUMNS if c in incoming.columns and c in current.columns]
    seen = set(current[key].astype(str).itertuples(index=False, name=None)) if len(current) else set()
    new = incoming[[tuple(row) not in seen for row in incoming[key].astype(str).itertuples(index=False, name=None)]]
    if new.empty:
        return new
    merged = pd.concat([current, new], ignore_index=True)[columns]
    # Write a temporary file and rename it: an interruption never leaves half a log.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".results_log.", suffix=".csv")
    os.close(fd)
    merged.to_csv(tmp, index=False)
    os.replace(tmp, target)
    return new.reset_index(drop=True)


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
