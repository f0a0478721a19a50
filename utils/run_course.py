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
import shutil
import sys
import tempfile
import time

import nbformat
import pandas as pd
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from .modes import MODES, REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
SKIP_TAGS = {"exercise", "nbval-skip"}


def expected_approaches(mode: str = "ci") -> dict[str, list[str]]:
    """The results-log rows (approach names) each notebook must write in a run of `mode`; a run
    without them failed.

    A notebook can finish without an error and still have measured nothing (a cell that skipped
    its work, a log written elsewhere): the course run checks the log, not only the cells.
    Notebook 6 logs its reviewed labels only once someone has submitted answers. In a headless run
    that happens only in ci mode, where stand-in annotators answer; in gpu and cpu mode nobody
    answers on the student's behalf, so the run ends with no review and no row, as it should.
    """
    from . import annotation, data_quality, metrics

    return {
        "3_tune_bert": [metrics.APPROACH_CLASSICAL, metrics.APPROACH_BERT],
        "4_tune_bert_nli": [metrics.APPROACH_NLI_ZERO_SHOT, metrics.APPROACH_NLI],
        "5_data_quality_cleanlab": [data_quality.APPROACH_EMBEDDINGS, data_quality.APPROACH_EMBEDDINGS_ISSUES_REMOVED,
                                    data_quality.APPROACH_EMBEDDINGS_ISSUES_RELABELLED],
        "6_annotation_argilla": [annotation.APPROACH_EMBEDDINGS_REVIEWED] if mode == "ci" else [],
        "7_tune_generative_llm": [metrics.APPROACH_LLM_ZERO_SHOT, metrics.APPROACH_LLM_LORA],
    }


def missing_results(rows: pd.DataFrame, notebook: str, mode: str = "ci") -> list[str]:
    """The approaches `notebook`, run in `mode`, should have logged among `rows` (results-log rows) but did not.

    The default, ci, expects the most (see expected_approaches).
    """
    logged = set(rows.loc[rows["notebook"] == notebook, "approach"])
    return [approach for approach in expected_approaches(mode).get(notebook, []) if approach not in logged]


def kernel_mode(env: dict[str, str] | None = None) -> str:
    """The run mode a kernel started with `env` picks (None: this process's environment)."""
    from .modes import run_mode

    return run_mode(env)


def logged_since(since: str, env: dict[str, str] | None = None) -> pd.DataFrame:
    """The results-log rows written since `since` (ISO time), from the log the kernel writes to."""
    from .metrics import RESULTS_COLUMNS, results_log_path

    folder = (env or {}).get("COURSE_RESULTS_DIR")
    path = pathlib.Path(folder) / "results_log.csv" if folder else results_log_path()
    log = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=RESULTS_COLUMNS)
    return log[log["time"] >= since]


def key_metric(rows: pd.DataFrame, notebook: str) -> str:
    """The best F1 macro among `notebook`'s rows of the results log, as short text."""
    rows = rows[rows["notebook"] == notebook]
    if rows.empty:
        return "-"
    best = rows.loc[rows["f1_macro"].idxmax()]
    return f"F1 macro {best['f1_macro']:.3f} ({best['approach']}, n={best['n_train']})"


def first_error_line(error: Exception) -> str:
    """The last line of a cell error: the exception type and message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # tracebacks come with terminal colours
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:120] if lines else type(error).__name__


def run_notebook(path: pathlib.Path, out_dir: pathlib.Path, timeout: int, env: dict[str, str] | None = None,
                 extra_cells: list[str] = ()) -> dict:
    """Execute one notebook (cwd: notebooks/) and save the executed copy; return a table row.

    `env` replaces the kernel's environment (default: this process's); `extra_cells` are code
    cells appended for this run only (the tests use one to read the kernel's state afterwards).
    """
    nb = nbformat.read(path, as_version=4)
    # Exercise stubs stop with NotImplementedError until a student fills them in: skip them, as the
    # tests do (their solutions, in the cells after them, do run).
    nb.cells = [cell for cell in nb.cells if not SKIP_TAGS & set(cell.get("metadata", {}).get("tags", []))]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in extra_cells]
    # The kernel talks to us over Unix sockets (IPC), not TCP: nothing listens on a port, and the kernel has
    # no reason to warn "Kernel is running over TCP without encryption" at every start. The sockets' path
    # must be absolute (the kernel starts in notebooks/) and short (a Unix socket path has ~100 bytes).
    sockets = tempfile.mkdtemp(prefix="course-kernel-")
    config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", config=config,
                            resources={"metadata": {"path": str(path.parent)}})
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    start = time.perf_counter()
    status = "ok"
    try:
        client.execute(**({"env": env} if env is not None else {}))
    except CellExecutionError as error:
        status = "FAILED: " + first_error_line(error)
    except Exception as error:  # a dead kernel or a timeout is a failure to report, not to crash on
        status = f"FAILED: {type(error).__name__}: {error}"[:140]
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    seconds = time.perf_counter() - start
    rows = logged_since(since, env)
    if status == "ok" and (missing := missing_results(rows, path.stem, kernel_mode(env))):
        status = f"FAILED: logged no result for {', '.join(missing)}"
    nbformat.write(nb, out_dir / path.name)
    return {"notebook": path.stem, "status": status, "seconds": round(seconds, 1),
            "key metric": key_metric(rows, path.stem)}


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
