"""A notebook's kernel killed after the first checkpoint of its training, then the notebook run again: the training
resumes (the output says from which step) and the final metrics equal an uninterrupted run's.

Notebooks 3 and 7, in ci mode and in the hub fixture's gpu setting. Each test runs its notebook three times
(uninterrupted, killed, rerun): the full tier (`make test-all`). The kill is a real SIGKILL of the kernel,
sent from inside it right after the Trainer has written its first checkpoint (an IPython startup file wraps
Trainer._save_checkpoint), as a lost Colab runtime would stop it. Tolerance: the logged metrics agree to
1e-6 (resuming restores weights, optimizer, schedule and random state; on a CPU the runs are the same numbers).
"""

from __future__ import annotations

import datetime as dt
import pathlib
import shutil

import nbformat
import pandas as pd
import pytest

from test_notebook_runs import RUNS_DIR, fixture_env, kernel_env  # noqa: F401 (fixture_env: a pytest fixture)
from utils import metrics, run_course

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOLERANCE = 1e-6
METRICS = ["f1_macro", "f1_micro", "accuracy", "balanced_accuracy", "precision_macro", "recall_macro"]
# Both settings train 2 epochs at least, so that the first checkpoint falls before the end of training.
EXTRA = {"COURSE_EPOCHS": "2"}
# What each notebook's first training is called, the approach it logs, and the code of its training cell.
TRAININGS = {
    "3_tune_bert": ("3_tune_bert/main", metrics.APPROACH_BERT, "trainer = fine_tune(train_df, valid_df)"),
    "7_tune_generative_llm": ("7_tune_generative_llm/lora", metrics.APPROACH_LLM_LORA, "run.train(trainer"),
}
KILL_AFTER_FIRST_CHECKPOINT = '''
import os, signal
import transformers

_save_checkpoint = transformers.Trainer._save_checkpoint


def _save_then_die(self, *args, **kwargs):
    _save_checkpoint(self, *args, **kwargs)  # the checkpoint is complete on disk
    os.kill(os.getpid(), signal.SIGKILL)     # then the runtime is gone, as after a Colab disconnect


transformers.Trainer._save_checkpoint = _save_then_die
'''


def _run(notebook: str, run_dir: pathlib.Path, env: dict[str, str], name: str) -> tuple[dict, nbformat.NotebookNode]:
    row = run_course.run_notebook(ROOT / "notebooks" / f"{notebook}.ipynb", run_dir, timeout=600, env=env)
    executed = run_dir / f"{name}.ipynb"
    shutil.move(run_dir / f"{notebook}.ipynb", executed)
    return row, nbformat.read(executed, as_version=4)


def _training_cell(nb: nbformat.NotebookNode, code: str) -> nbformat.NotebookNode:
    return next(cell for cell in nb.cells if cell.cell_type == "code" and code in cell.source)


def _seconds(cell: nbformat.NotebookNode) -> float:
    """How long the cell ran, from the timing nbclient records in its metadata."""
    timing = cell.metadata["execution"]
    start, end = (dt.datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                  for k in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def _text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _final_metrics(results: pathlib.Path, notebook: str, approach: str) -> pd.DataFrame:
    log = pd.read_csv(results / "results_log.csv")
    rows = log[(log["notebook"] == notebook) & (log["approach"] == approach)]
    return rows.groupby("n_train")[METRICS].last().sort_index()


@pytest.mark.full
@pytest.mark.parametrize("setting", ["ci", "gpu"])
@pytest.mark.parametrize("notebook", list(TRAININGS))
def test_a_killed_notebook_training_resumes_and_ends_as_an_uninterrupted_one(notebook, setting, request):
    fixture = {} if setting == "ci" else request.getfixturevalue("fixture_env")
    training, approach, code = TRAININGS[notebook]
    base = RUNS_DIR / "resume" / setting / notebook
    shutil.rmtree(base, ignore_errors=True)

    whole = base / "uninterrupted"
    whole.mkdir(parents=True)
    row, nb_whole = _run(notebook, whole, kernel_env(setting, whole, EXTRA, fixture), "uninterrupted")
    assert row["status"] == "ok", f"uninterrupted run: {row['status']} ({whole})"
    assert "trained from the start" in _text(_training_cell(nb_whole, code))

    # The same settings in another folder: killed at the first checkpoint, then run again there.
    killed = base / "killed"
    startup = killed / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-kill-after-first-checkpoint.py").write_text(KILL_AFTER_FIRST_CHECKPOINT, encoding="utf-8")
    env = kernel_env(setting, killed, EXTRA, fixture)
    row, _ = _run(notebook, killed, {**env, "IPYTHONDIR": str(killed / "ipython")}, "killed")
    assert row["status"].startswith("FAILED") and "ead" in row["status"], f"the kernel was not killed: {row['status']}"
    checkpoints = sorted((killed / "results" / "training" / training / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1, f"expected the first checkpoint alone, found {checkpoints}"
    first_step = int(checkpoints[0].name.removeprefix("checkpoint-"))

    row, nb_again = _run(notebook, killed, env, "resumed")
    assert row["status"] == "ok", f"rerun after the kill: {row['status']} ({killed})"
    out = _text(_training_cell(nb_again, code))
    assert f"resumed from step {first_step} of " in out, out[-2000:]
    assert not (killed / "results" / "training" / training / "checkpoints").exists()

    expected = _final_metrics(whole / "results", notebook, approach)
    got = _final_metrics(killed / "results", notebook, approach)
    assert not expected.empty and list(got.index) == list(expected.index)
    assert ((got - expected).abs() <= TOLERANCE).all().all(), f"resumed:\n{got}\nuninterrupted:\n{expected}"

    full, resumed = _seconds(_training_cell(nb_whole, code)), _seconds(_training_cell(nb_again, code))
    with open(RUNS_DIR / "resume" / "timings.csv", "a", encoding="utf-8") as timings:
        timings.write(f"{setting},{notebook},{first_step},{full:.1f},{resumed:.1f},{full - resumed:.1f}\n")
    print(f"{setting} {notebook}: training cell {full:.1f} s uninterrupted, {resumed:.1f} s resumed from step "
          f"{first_step}: {full - resumed:.1f} s saved")
