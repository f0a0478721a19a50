"""How long does `make study` take in ci mode on a task of about 3,000 labelled rows with a group column?

    COURSE_MODE=ci .venv/bin/python benchmarks/study_speed.py                 # the ci defaults: every approach
    COURSE_MODE=ci .venv/bin/python benchmarks/study_speed.py --rows 3000 --keep /tmp/study-speed
    COURSE_MODE=ci .venv/bin/python benchmarks/study_speed.py -- --approaches tfidf embeddings  # study options

A benchmark, not a test: it prints the grid, the wall time of the whole command (imports and model
loading included) and whether it stayed within the budget (--budget-minutes, default 10).

The task is built in a temporary folder (never in the repository) from the repository's own tiny
slices: each row is a quote of the military slice (its label and its country, the group column)
between a sentence before and a sentence after it drawn at random from every slice of data/, so
that the rows are distinct texts (the embeddings cache dedups repeats). 80% of the rows become the
train file, 20% the test file (stratified). The machine's load (/proc/loadavg) is printed before
and after: on a shared machine the time moves with what else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    try:
        return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def build_task(folder: pathlib.Path, rows: int, seed: int = 0) -> pathlib.Path:
    """A task of `rows` synthetic rows (3 labels, a country group column) in `folder`; returns its task file."""
    from sklearn.model_selection import train_test_split

    slices = ROOT / "data"
    military = pd.concat([pd.read_csv(slices / "manifesto_military" / f"{split}.csv") for split in ("train", "test")])
    sentences = []
    for path in sorted(slices.glob("*/*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        column = "sentence" if "sentence" in frame else "text_original"
        sentences += [s for s in frame[column] if s.strip()]
    rng = np.random.default_rng(seed)
    picked = military.iloc[rng.integers(0, len(military), rows)]
    data = pd.DataFrame({
        "text_original": picked["text_original"].to_numpy(),
        "text_preceding": rng.choice(sentences, rows),
        "text_following": rng.choice(sentences, rows),
        "label_text": picked["label_text"].to_numpy(),
        "country_name": picked["country_name"].to_numpy(),
    })
    train, test = train_test_split(data, test_size=0.2, stratify=data["label_text"], random_state=seed)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    task = json.loads((slices / "manifesto_military" / "task.json").read_text(encoding="utf-8"))
    for key in ("data_url", "ci_files"):
        task.pop(key, None)
    task.update(name="study-speed", files={"train": "train.csv", "test": "test.csv"})
    (folder / "task.json").write_text(json.dumps(task, indent=1), encoding="utf-8")
    return folder / "task.json"


def main() -> int:
    """Build the task, run the study in ci mode, print the grid and the time."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3000, help="labelled rows of the synthetic task (train + test)")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--keep", help="build the task and the study in this folder and keep them")
    parser.add_argument("study_args", nargs="*", help="options for the study, after --")
    args = parser.parse_args()
    folder = pathlib.Path(args.keep) if args.keep else pathlib.Path(tempfile.mkdtemp(prefix="study-speed-"))
    folder.mkdir(parents=True, exist_ok=True)
    task = build_task(folder, args.rows)
    env = {**os.environ, "COURSE_MODE": "ci"}
    command = [sys.executable, "-m", "utils.study", "--task", str(task), "--output-dir", str(folder / "study"),
               *args.study_args]
    print(f"{args.rows} rows ({len(pd.read_csv(folder / 'train.csv'))} train, {len(pd.read_csv(folder / 'test.csv'))} "
          f"test), {os.cpu_count()} cores, load before: {load()}\n$ COURSE_MODE=ci {' '.join(command)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env)
    minutes = (time.perf_counter() - start) / 60
    table = folder / "study" / "tables" / "cells.csv"
    cells = pd.read_csv(table) if done.returncode == 0 and table.exists() else None
    print(f"\nload after: {load()}")
    if cells is not None:
        per = cells.groupby("approach").agg(cells=("seed", "size"), sizes=("n_train", lambda s: sorted(set(s))),
                                            compute_minutes=("seconds", lambda s: s.sum() / 60))
        print(per.round(2).to_string())
        print("(compute minutes as the study counts them: an embeddings cell counts the embedding of its own texts, "
              "which the study computes once for all cells)")
    verdict = "within" if minutes <= args.budget_minutes else "OVER"
    print(f"study wall time: {minutes:.1f} min ({verdict} the {args.budget_minutes:g}-minute budget); "
          f"exit status {done.returncode}; folder {folder}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
