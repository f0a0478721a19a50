"""The study's data and grid: the held-out test rows, the training samples per size and seed, and
the store of finished cells that lets an interrupted study resume.

Reuses the course's data code: utils.data reads and checks the task's files (labels, columns)
and draws the seeded stratified samples (`sample`); `prepare_texts` builds the text the models read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .options import FINE_TUNED, Resolved, StudyError

MIN_PER_LABEL = 2  # examples of each label the smallest training sample must hold


@dataclass
class StudyData:
    """The task, its train file (the pool the samples come from) and the fixed held-out test rows."""

    task: object          # utils.task.Task
    task_path: pathlib.Path
    files: dict[str, str]  # split -> path
    pool: pd.DataFrame     # every row of the train file, with `text` and `label`
    test: pd.DataFrame     # the held-out test rows (index: their row in the test file)
    group_column: str | None


@dataclass(frozen=True)
class Cell:
    """One point of the grid: an approach trained on `size` rows drawn with `seed` (size 0: zero-shot)."""

    approach: str
    size: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.approach} n={self.size} seed={self.seed}"


def sha256(path: str | pathlib.Path) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def task_file_path(task_choice: str) -> pathlib.Path:
    """The task file a --task names (a built-in name or a path), as utils.task.load_task finds it."""
    from ..modes import REPO_ROOT
    from ..task import BUILT_IN_TASKS

    if task_choice in BUILT_IN_TASKS:
        return BUILT_IN_TASKS[task_choice]
    for candidate in (pathlib.Path(task_choice).expanduser(), REPO_ROOT / task_choice):
        if candidate.is_file():
            return candidate.resolve()
        if candidate.is_dir() and (candidate / "task.json").is_file():
            return (candidate / "task.json").resolve()
    raise StudyError(f"--task {task_choice}: no such task file. Give a built-in task (manifesto-military, "
                     "manifesto-protectionism) or the path of your task.json, e.g. --task data/example_task/task.json.")


def load_study_data(r: Resolved) -> StudyData:
    """Read and check the task's files; StudyError (or the course's DataError) names what is wrong and the fix."""
    from ..data import check_every_label_occurs, load_course_data, prepare_texts, sample
    from ..task import load_task

    path = task_file_path(r.task)
    task = load_task(str(path))
    files = {split: where for split, where in task.data_files(r.mode).items()}
    train, test = load_course_data("train", task), load_course_data("test", task)
    check_every_label_occurs(train, f"train file ({files['train']})", task)
    check_every_label_occurs(test, f"test file ({files['test']})", task)
    group = r.group_column or task.group_column
    if group is not None:
        missing = [split for split, df in (("train", train), ("test", test)) if group not in df.columns]
        if "test" in missing:
            raise StudyError(f"The group column {group!r} is not in the test file {files['test']} (its columns: "
                             f"{[c for c in test.columns if c != 'label']}). Fix `group_column` in the task file, or "
                             "pass --group-column with one of those columns.")
    n_test = r.n_test if r.n_test else len(test)
    if "n_test" in r.defaulted:  # the mode's default is an upper limit, not a demand
        n_test = min(n_test, len(test))
    if n_test > len(test):
        raise StudyError(f"--n-test {n_test}: the test file {files['test']} has only {len(test)} rows. Use --n-test "
                         f"{len(test)} or fewer (0: all of them).")
    r.args.n_test = n_test if n_test < len(test) else 0  # what was used: the replication bundle records it
    test = sample(test, n_test, r.seed) if n_test < len(test) else test
    check_every_label_occurs(test, f"test sample of {n_test} rows (--n-test)", task)
    pool = prepare_texts(train, r.context)
    test = prepare_texts(test, r.context).sort_index()
    return StudyData(task, path, {k: str(v) for k, v in files.items()}, pool, test, group)


def sizes_for(r: Resolved, data: StudyData) -> list[int]:
    """The training sizes: --sizes, or doubling from --min-size up to --max-size (default: the train file's rows)."""
    available = len(data.pool)
    if r.sizes is not None:
        sizes = sorted(set(r.sizes))
    else:
        upper = min(r.max_size or available, available)
        sizes, n = [], r.min_size
        while n <= upper:
            sizes.append(n)
            n *= 2
    too_big = [n for n in sizes if n > available]
    if too_big or not sizes:
        raise StudyError(f"Training sizes {too_big or sizes} do not fit: the train file {data.files['train']} has "
                         f"{available} rows, and the smallest size is {r.min_size}. Use smaller --sizes or --min-size "
                         f"(at most {available}), or add labelled rows.")
    _check_smallest_size(sizes[0], data)
    return sizes


def _check_smallest_size(n: int, data: StudyData) -> None:
    """StudyError when the smallest stratified sample would hold fewer than MIN_PER_LABEL rows of a label."""
    counts = data.pool["label_text"].value_counts()
    share = counts / len(data.pool)
    expected = (share * n).apply(math.floor)
    short = {label: int(expected[label]) for label in counts.index if expected[label] < MIN_PER_LABEL}
    if short:
        rarest = counts.idxmin()
        needed = math.ceil(MIN_PER_LABEL * len(data.pool) / counts[rarest])
        raise StudyError(
            f"Too few rows for the smallest size per label: a stratified sample of {n} rows from the train file "
            f"({len(data.pool)} rows) holds only {short} of these labels, and each label needs at least "
            f"{MIN_PER_LABEL} examples to be learnt. Fix: a larger --min-size (at least {needed}), or more labelled "
            f"rows of {rarest!r} (it has {counts[rarest]}).")


def grid(r: Resolved, data: StudyData) -> list[Cell]:
    """Every cell to run, cheap approaches first (so a stopped study already has their curves)."""
    sizes = sizes_for(r, data)
    nli_possible = bool(data.task.descriptions) or "hypotheses" not in data.task.generated
    cells = []
    for approach in r.approaches:
        if approach.startswith("nli") and not nli_possible:
            continue
        if approach == "nli-zero-shot":
            cells.append(Cell(approach, 0, r.seeds[0]))
            continue
        cap = r.max_size_finetune if approach in FINE_TUNED and r.max_size_finetune else None
        chosen = [n for n in sizes if cap is None or n <= cap] or sizes[:1]
        cells += [Cell(approach, n, seed) for n in chosen for seed in r.seeds]
    return cells


def skipped_approaches(r: Resolved, data: StudyData) -> dict[str, str]:
    """Approaches asked for that the grid leaves out, and why."""
    nli_possible = bool(data.task.descriptions) or "hypotheses" not in data.task.generated
    return {a: "the task has no label descriptions or hypotheses to build NLI pairs from" for a in r.approaches
            if a.startswith("nli") and not nli_possible}


def train_rows(data: StudyData, cell: Cell) -> pd.DataFrame:
    """The training sample of a cell: `size` rows of the train file, stratified, drawn with `seed`
    (utils.data.sample)."""
    from ..data import sample

    if cell.size == 0:
        return data.pool.iloc[0:0]
    return sample(data.pool, cell.size, cell.seed)


# ---------------------------------------------------------------- the store of finished cells


def cell_path(folder: pathlib.Path, cell: Cell) -> pathlib.Path:
    """Where a finished cell is kept: cells/<approach>/n<size>-seed<seed>.json."""
    return folder / "cells" / cell.approach / f"n{cell.size}-seed{cell.seed}.json"


def cell_key(config: dict, train_index: np.ndarray, test_index: np.ndarray, data_hashes: dict) -> str:
    """What makes a cell's result: its approach's settings, its rows and the data; another key is another cell."""
    text = json.dumps({"config": config, "train": [int(i) for i in train_index], "test": [int(i) for i in test_index],
                       "data": data_hashes}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load_cell(folder: pathlib.Path, cell: Cell, key: str) -> dict | None:
    """The stored result of `cell` if it was finished with the same key; None when it must run."""
    path = cell_path(folder, cell)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not run yet (a cell cut short is never written: see save_cell)
    return stored if stored.get("key") == key else None


def save_cell(folder: pathlib.Path, cell: Cell, result: dict) -> None:
    """Write a finished cell atomically (a temporary file renamed), so a kill never leaves half a cell."""
    path = cell_path(folder, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, path)
