"""Run every course notebook headless and print a table: the pre-class check and the benchmark.

    python -m utils.run_course                 # mode detected (gpu on a GPU machine, else cpu)
    python -m utils.run_course --mode ci       # offline, tiny data: works with no network
    python -m utils.run_course --only 3_tune_bert 4_tune_bert_nli

Executed copies (with outputs) go to build/course-run/<mode>/, which git ignores; the notebooks
in notebooks/ are never changed. Exits with 1 if any notebook failed.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import time

import nbformat
import pandas as pd
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .modes import MODES, REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
SKIP_TAGS = {"exercise", "nbval-skip"}


def key_metric(notebook: str, since: str) -> str:
    """The best F1 macro that `notebook` logged since `since` (ISO time), as short text."""
    from .metrics import read_results

    log = read_results()
    rows = log[(log["notebook"] == notebook) & (log["time"] >= since)] if not log.empty else log
    if rows.empty:
        return "-"
    best = rows.loc[rows["f1_macro"].idxmax()]
    return f"F1 macro {best['f1_macro']:.3f} ({best['approach']}, n={best['n_train']})"


def first_error_line(error: Exception) -> str:
    """The last line of a cell error: the exception type and message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # tracebacks come with terminal colours
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:120] if lines else type(error).__name__


def run_notebook(path: pathlib.Path, out_dir: pathlib.Path, timeout: int) -> dict:
    """Execute one notebook (cwd: notebooks/) and save the executed copy; return a table row."""
    nb = nbformat.read(path, as_version=4)
    # Exercise stubs stop with NotImplementedError until a student fills them in: skip them, as the
    # tests do (their solutions, in the cells after them, do run).
    nb.cells = [cell for cell in nb.cells if not SKIP_TAGS & set(cell.get("metadata", {}).get("tags", []))]
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    start = time.perf_counter()
    status = "ok"
    try:
        client.execute()
    except CellExecutionError as error:
        status = "FAILED: " + first_error_line(error)
    except Exception as error:  # a dead kernel or a timeout is a failure to report, not to crash on
        status = f"FAILED: {type(error).__name__}: {error}"[:140]
    seconds = time.perf_counter() - start
    nbformat.write(nb, out_dir / path.name)
    return {"notebook": path.stem, "status": status, "seconds": round(seconds, 1),
            "key metric": key_metric(path.stem, since)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, help="run mode for every notebook (default: detected)")
    parser.add_argument("--only", nargs="*", help="notebook names (without .ipynb) to run; default all")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell (default 3600)")
    parser.add_argument("--out", type=pathlib.Path, default=REPO_ROOT / "build" / "course-run")
    args = parser.parse_args(argv)

    if args.mode:
        os.environ["COURSE_MODE"] = args.mode  # the kernels inherit it
    from .modes import run_mode

    mode = run_mode()
    paths = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    if args.only:
        unknown = set(args.only) - {p.stem for p in paths}
        if unknown:
            parser.error(f"no such notebook(s): {sorted(unknown)}; choose from {[p.stem for p in paths]}")
        paths = [p for p in paths if p.stem in args.only]
    out_dir = args.out / mode
    out_dir.mkdir(parents=True, exist_ok=True)

    print(f"Running {len(paths)} notebook(s) in {mode} mode; executed copies go to {out_dir}", flush=True)
    rows = []
    for path in paths:
        row = run_notebook(path, out_dir, args.timeout)
        print(f"  {row['notebook']}: {row['status']} in {row['seconds']} s", flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "summary.csv", index=False)
    print()
    print(table.to_string(index=False))
    print(f"\ntotal: {table['seconds'].sum():.0f} s; median per notebook: {table['seconds'].median():.0f} s")
    return 0 if (table["status"] == "ok").all() else 1


if __name__ == "__main__":
    sys.exit(main())
