"""The class as an experiment: merge many students' results logs into one table and one plot per approach.

Every student's run of the course is one more seed and sample. Collect the students' results logs
(`results/results_log.csv`, the file utils.log_result writes), put them in one folder, then:

    python -m utils.class_results LOGS_FOLDER_OR_FILES... --out build/class-results
    make class-results LOGS=path/to/folder

It writes `class_results.csv` (per approach and training size: students, median, min, max, range
of F1 macro), `class_runs.csv` (the run of each student it used) and `class_results.png` (one panel
per approach: each student a dot, the median a line, the range a bar, the paper's figure a diamond),
plus one `class_results_<approach>.png` per approach. The slides' "What the class found" slide shows
`class_results.png` when it exists (see slides/README.md).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys

import numpy as np
import pandas as pd

from .metrics import (APPROACH_BERT, APPROACH_CLASSICAL, APPROACH_LLM_LORA, APPROACH_LLM_ZERO_SHOT, APPROACH_NLI,
                      APPROACH_NLI_ZERO_SHOT, RESULTS_COLUMNS)
from .modes import MODES, REPO_ROOT
from .task import DEFAULT_TASK

REFERENCE_PATH = REPO_ROOT / "data" / "paper_reference.csv"
DEFAULT_OUT = REPO_ROOT / "build" / "class-results"
REQUIRED = ["approach", "n_train", "f1_macro"]  # the columns a merge needs; the rest of a log is optional
COURSE_ORDER = [APPROACH_CLASSICAL, APPROACH_BERT, APPROACH_NLI_ZERO_SHOT, APPROACH_NLI, APPROACH_LLM_ZERO_SHOT,
                APPROACH_LLM_LORA]
SUMMARY_COLUMNS = ["approach", "n_train", "students", "median", "min", "max", "range"]


class ResultsLogError(ValueError):
    """A file that is not a usable results log; the message names the file and what to do."""


def find_logs(paths: list[str | pathlib.Path]) -> list[pathlib.Path]:
    """The CSV files to merge: files as given, and every *.csv under each folder (sorted)."""
    found = []
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.csv") if p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise ResultsLogError(f"{path} does not exist: give results-log files or folders that hold them.")
    if not found:
        raise ResultsLogError(f"No CSV file in {[str(p) for p in paths]}: put the students' results_log.csv "
                              "files there (any names, one per student).")
    return found


def read_log(path: pathlib.Path) -> pd.DataFrame:
    """One results log as a table; ResultsLogError naming the file when it is not one."""
    hint = (f"A results log is the results_log.csv a notebook writes (columns {', '.join(RESULTS_COLUMNS)}); "
            "check that the student sent that file, or leave it out (--skip-bad).")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ResultsLogError(f"{path} is empty. {hint}") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        raise ResultsLogError(f"{path} is not a readable CSV file ({type(error).__name__}). {hint}") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ResultsLogError(f"{path} is not a results log: it lacks the column(s) {missing} "
                              f"(found: {list(df.columns)[:8]}). {hint}")
    if df.empty:
        raise ResultsLogError(f"{path} has a header but no runs. {hint}")
    n_train = pd.to_numeric(df["n_train"], errors="coerce")
    f1 = pd.to_numeric(df["f1_macro"], errors="coerce")
    bad = df.index[n_train.isna() | (n_train < 0) | (n_train % 1 != 0) | f1.isna() | (f1 < 0) | (f1 > 1)].tolist()
    if bad:
        raise ResultsLogError(f"{path}: row(s) {[i + 2 for i in bad[:10]]} (line numbers) have an n_train that is "
                              f"not a whole number >= 0 or an f1_macro outside 0-1. {hint}")
    df = df.assign(n_train=n_train.astype(int), f1_macro=f1.astype(float))
    if "source" in df.columns:  # a comparison table: its reference rows are the paper's, not the student's
        df = df[~df["source"].astype(str).str.startswith("reference")]
    return df


def student_names(paths: list[pathlib.Path]) -> list[str]:
    """A short unique name per file: its stem, or its path below the common folder when stems repeat."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    resolved = [p.resolve() for p in paths]
    common = pathlib.Path(os.path.commonpath([p.parent for p in resolved]))
    return [str(p.relative_to(common).with_suffix("")) for p in resolved]


def merge_logs(paths: list[str | pathlib.Path], mode: str = "gpu", skip_bad: bool = False,
               task: str = DEFAULT_TASK) -> tuple[pd.DataFrame, list[tuple[pathlib.Path, str]]]:
    """The runs of every student: one row per student, approach and training size (their latest run).

    `mode` keeps the runs of one run mode ("any" keeps all), so ci smoke runs never mix with real
    ones; `task` the runs of one task (rows without a task are the default task's), so no figure
    mixes two tasks. A file that is not a results log stops the merge with its name, unless
    `skip_bad`: then it is left out and listed in the second value, (file, reason) pairs.
    """
    if mode != "any" and mode not in MODES:
        raise ResultsLogError(f"mode must be one of {', '.join(MODES)} or 'any', not {mode!r}.")
    files = find_logs(paths)
    frames, skipped = [], []
    for path, student in zip(files, student_names(files)):
        try:
            frames.append(read_log(path).assign(student=student))
        except ResultsLogError as error:
            if not skip_bad:
                raise
            skipped.append((path, str(error)))
    if not frames:
        raise ResultsLogError(f"None of the {len(files)} file(s) is a results log; see the reasons above.")
    runs = pd.concat(frames, ignore_index=True)
    runs["task"] = runs["task"].fillna(DEFAULT_TASK) if "task" in runs.columns else DEFAULT_TASK
    if not (runs["task"] == task).any():
        found = sorted(runs["task"].unique())
        raise ResultsLogError(f"No run of the task {task!r} in the logs (tasks found: {found}). Use --task with one "
                              "of those.")
    runs = runs[runs["task"] == task]
    if mode != "any" and "mode" in runs.columns:
        modes_found = sorted(runs["mode"].dropna().astype(str).unique())
        runs = runs[runs["mode"] == mode]
        if runs.empty:
            raise ResultsLogError(f"No run of mode {mode!r} in the logs (modes found: {modes_found}). "
                                  "Use --mode with one of those, or --mode any.")
    if "time" in runs.columns:  # the latest run per student, approach and size: reruns replace earlier ones
        runs = runs.sort_values("time", kind="stable")
    runs = runs.drop_duplicates(["student", "approach", "n_train"], keep="last")
    columns = ["student", "approach", "n_train", "f1_macro"] + [c for c in ("model", "mode", "device", "time")
                                                                 if c in runs.columns]
    return runs[columns].sort_values(["approach", "n_train", "student"]).reset_index(drop=True), skipped


def approach_order(approaches) -> list[str]:
    """The course's approaches in course order, then any others alphabetically."""
    present = set(approaches)
    return [a for a in COURSE_ORDER if a in present] + sorted(present - set(COURSE_ORDER))


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per approach and training size: how many students, and the median, min, max and range of F1 macro."""
    grouped = runs.groupby(["approach", "n_train"])["f1_macro"]
    table = grouped.agg(students="size", median="median", min="min", max="max").reset_index()
    table["range"] = table["max"] - table["min"]
    order = {a: i for i, a in enumerate(approach_order(table["approach"]))}
    table = table.sort_values(["approach", "n_train"], key=lambda c: c.map(order) if c.name == "approach" else c)
    return table[SUMMARY_COLUMNS].reset_index(drop=True)


def read_reference(path: pathlib.Path = REFERENCE_PATH) -> pd.DataFrame:
    """The paper's figures (data/paper_reference.csv): task, approach, model, n_train, f1_macro, seeds, source.

    A file without a task column holds figures of the default task (manifesto-military).
    """
    reference = pd.read_csv(path)
    missing = [c for c in [*REQUIRED, "source"] if c not in reference.columns]
    if missing:
        raise ResultsLogError(f"{path} lacks the column(s) {missing}: it must hold the paper's figures with "
                              "their source, one row per task, approach and training size.")
    if "task" not in reference.columns:
        reference.insert(0, "task", DEFAULT_TASK)
    reference["task"] = reference["task"].fillna(DEFAULT_TASK)
    return reference


def slug(approach: str) -> str:
    """A file-name-safe version of an approach name."""
    return re.sub(r"[^a-z0-9]+", "-", approach.lower()).strip("-")


def _draw_panel(ax, runs: pd.DataFrame, summary: pd.DataFrame, reference: pd.DataFrame, approach: str) -> None:
    """One approach: students as dots, the median as a line, min-max as bars, the paper as diamonds."""
    mine, stats = runs[runs["approach"] == approach], summary[summary["approach"] == approach]
    paper = reference[reference["approach"] == approach]
    sizes = sorted(set(mine["n_train"]) | set(paper["n_train"]))
    x_of = {n: i for i, n in enumerate(sizes)}  # evenly spaced sizes: 0 (zero-shot) and 2500 both fit
    rng = np.random.default_rng(0)  # jitter only spreads overlapping dots; it moves no value
    ax.scatter(mine["n_train"].map(x_of) + rng.uniform(-0.12, 0.12, len(mine)), mine["f1_macro"], s=14,
               color="tab:blue", alpha=0.5, label="one student")
    xs = stats["n_train"].map(x_of)
    ax.vlines(xs, stats["min"], stats["max"], color="tab:grey", lw=4, alpha=0.45, label="range (min to max)")
    ax.plot(xs, stats["median"], color="black", marker="_", markersize=22, markeredgewidth=2.5, lw=1,
            label="median")
    if not paper.empty:
        ax.scatter(paper["n_train"].map(x_of), paper["f1_macro"], marker="D", s=45, facecolors="none",
                   edgecolors="tab:orange", linewidths=1.8, label="paper (mean of seeds)", zorder=3)
    ax.set_xticks(range(len(sizes)), [str(n) for n in sizes])
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set(title=approach, xlabel="training examples", ylabel="F1 macro", ylim=(0, 1))
    ax.grid(alpha=0.3)


def plot_class_results(runs: pd.DataFrame, summary: pd.DataFrame, reference: pd.DataFrame,
                       out_dir: pathlib.Path) -> list[pathlib.Path]:
    """class_results.png (a panel per approach) and class_results_<approach>.png; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    approaches = approach_order(runs["approach"])
    students = runs["student"].nunique()
    columns = 2 if len(approaches) in (2, 4) else min(3, len(approaches))
    rows = -(-len(approaches) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.6 * rows), squeeze=False)
    for ax, approach in zip(axes.flat, approaches):
        _draw_panel(ax, runs, summary, reference, approach)
    for ax in list(axes.flat)[len(approaches):]:
        ax.set_axis_off()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    fig.suptitle(f"What the class found: F1 macro of {students} students' runs, with the paper's figures")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    paths = [out_dir / "class_results.png"]
    fig.savefig(paths[0], dpi=130)
    plt.close(fig)
    for approach in approaches:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        _draw_panel(ax, runs, summary, reference, approach)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        paths.append(out_dir / f"class_results_{slug(approach)}.png")
        fig.savefig(paths[-1], dpi=130)
        plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    """The command line: merge the logs, write the table and plots, print the table; 2 on a bad log."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", help="results-log CSV files, or folders holding them")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--mode", default="gpu", help="keep the runs of this run mode: gpu (default), cpu, ci or any")
    parser.add_argument("--skip-bad", action="store_true", help="leave out files that are not results logs")
    parser.add_argument("--task", default=DEFAULT_TASK, help=f"keep the runs of this task (default {DEFAULT_TASK})")
    args = parser.parse_args(argv)
    try:
        runs, skipped = merge_logs(args.logs, mode=args.mode, skip_bad=args.skip_bad, task=args.task)
    except ResultsLogError as error:
        print(f"class_results: {error}", file=sys.stderr)
        return 2
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    summary = summarise(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    summary.round(4).to_csv(args.out / "class_results.csv", index=False)
    runs.to_csv(args.out / "class_runs.csv", index=False)
    reference = read_reference()
    paths = plot_class_results(runs, summary, reference[reference["task"] == args.task], args.out)
    with pd.option_context("display.width", 160, "display.max_columns", 10):
        print(summary.round(3).to_string(index=False))
    print(f"\n{runs['student'].nunique()} students, {len(runs)} runs; written to {args.out}: class_results.csv, "
          f"class_runs.csv and {len(paths)} plot(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
