"""Every notebook, executed headless, and checked on what it produced, in three settings.

- `ci`: the offline stand-ins and the data/ slices (COURSE_MODE=ci).
- `gpu` and `cpu`: the notebooks' real gpu and cpu settings (hub ids, code paths, dtypes)
  against the hub-shaped fixture of tests/hub_fixture.py: tiny random models with the real
  repos' architecture, head, labels, tokenizer files and checkpoint dtype, and data files in the
  real format. Sizes are small (FIXTURE_SIZES), set the way a student would: COURSE_<NAME>.
  The device is this machine's (a CPU here; CUDA where there is one).
- two exercise variants in gpu settings: notebook 3 with ModernBERT, notebook 7 with Qwen2.5;
  and notebooks 3 and 4 with every fixture stored in float32 (`gpu-fp32`), to show that nothing
  depends on a checkpoint's dtype by accident.
- `ci-protectionism`: notebooks 3-7 in ci mode on the second built-in task (COURSE_TASK), so that
  nothing of the default task is hard-coded; notebook 4 once more in a fresh results folder,
  where the paper's figures (which are the military task's) must not stand in.

Every kernel runs behind the network guard (tests/network_guard): a connection that is not
loopback fails the run. Exercise stubs are skipped, their solutions run (as in utils.run_course).
After each run, the checks read the executed notebook, the results log and a probe cell that
the test appends (it prints kernel state as JSON; the notebooks stay free of test code):
results-log rows for the approaches the notebook teaches, F1 macro within [0, 1], n_test equal
to the setting; an image from every plotting cell; no traceback written to stderr; and a few
facts per notebook (PROBES and check_probe). A second appended cell answers every self-check
with each answer on offer: exactly one must be judged right (tests/self_checks.py).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import time

import nbformat
import pandas as pd
import pytest

import self_checks  # tests/self_checks.py
from utils import run_course
from utils.metrics import APPROACH_BERT, APPROACH_LLM_LORA
from utils.results import SOURCE_YOURS, reference_results
from utils.task import DEFAULT_TASK, load_task

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# NOTEBOOK_RUNS_DIR keeps two test sessions on one machine out of each other's folders.
# (Made absolute: the kernels start in notebooks/, and they are given paths under it.)
RUNS_DIR = pathlib.Path(os.environ.get("NOTEBOOK_RUNS_DIR", ROOT / "build" / "notebook-runs")).resolve()
GUARD_DIR = ROOT / "tests" / "network_guard"
PROBE_MARK = "NOTEBOOK_PROBE "

# Small sizes for the gpu/cpu settings: every code path of the real settings, in seconds.
FIXTURE_SIZES = {
    "COURSE_N_TRAIN": "48", "COURSE_N_VALID": "12", "COURSE_N_TEST": "30", "COURSE_EPOCHS": "1",
    "COURSE_LEARNING_CURVE_SIZES": "24,48", "COURSE_N_REVIEW": "10", "COURSE_MAX_NEW_TOKENS": "4",
    "COURSE_N_SHOW": "3", "COURSE_MIN_STEPS": "8",
}

# What the probe cell prints, per notebook, besides the settings (names of the notebooks' variables).
PROBES = {
    "2_inside_transformers": '{"by_hand": float(by_hand_difference.max()), "n_attentions": len(attentions), '
                             '"n_layers": encoder.config.num_hidden_layers}',
    "3_tune_bert": '{"weights_dtype": str(trainer.model.dtype), '
                   '"labels": list(trainer.model.config.id2label.values())}',
    "4_tune_bert_nli": '{"weights_dtype": str(trainer.model.dtype), "epochs": epochs, '
                       '"steps": trainer.state.global_step, "n_pairs": len(train_pairs), '
                       '"sources": {a: sorted(set(g)) for a, g in comparison.groupby("approach")["source"]}}',
    "5_data_quality_cleanlab": '{"issue_columns": list(utils.load_label_issues(TASK).columns), '
                               '"issue_rows": len(utils.load_label_issues(TASK)), '
                               '"issue_labels": sorted(set(utils.load_label_issues(TASK)["label_text"]))}',
    # The answers on the server are read with the Argilla SDK itself, not through utils: who gave them, which status.
    # `issues`: the table the notebook reviewed, read from notebook 5's file (chained settings) or found again
    # (an independent ci run, as on a fresh Colab runtime); "issues_source" says which.
    "6_annotation_argilla": '{"issue_columns": list(issues.columns), "issue_rows": len(issues), '
                            '"issues_source": source, "dataset": dataset.name, '
                            '"question_labels": list(settings.questions["stance"].labels), '
                            '"reviewed": len(corrections), "found": int(summary.loc["found in the training data", "rows"]), '
                            '"responses": len(responses), "on_server": client is not None, '
                            '"server_answers": None if client is None else [[{str(u.id): u.username for u in client.users}'
                            '.get(str(a.user_id), str(a.user_id)), str(getattr(a.status, "value", a.status))] '
                            'for r in dataset.records(with_responses=True) for a in r.responses], '
                            '"reviewed_rows_logged": int((utils.read_results()["approach"] '
                            '== utils.APPROACH_EMBEDDINGS_REVIEWED).sum())}',
    "7_tune_generative_llm": '{"merged_agrees": float((pred_merged == pred_lora[:S.N_SHOW]).mean()), '
                             '"scores_finite": bool(np.isfinite(scores_zero).all() and np.isfinite(scores_lora).all() '
                             'and np.isfinite(scores_short).all() and np.isfinite(scores_merged_short).all()), '
                             '"sources": {a: sorted(set(g)) for a, g in results.groupby("approach")["source"]}, '
                             '"corpus_hours": cost["hours for the corpus"].astype(float).tolist()}',
}


def probe_cell(notebook: str) -> str:
    """The code cell appended to a run: prints the settings and PROBES[notebook] as one JSON line."""
    extra = PROBES.get(notebook, "{}")
    return ("import json as _json\nimport numpy as np\n"
            "_task = globals().get('TASK')  # notebooks 3-7 have one\n"
            f"print({PROBE_MARK!r} + _json.dumps({{'settings': S.values, 'mode': S.mode, "
            f"'task': getattr(_task, 'name', None), **{extra}}}, default=str))")


# (run id, setting, notebook stem, extra environment)
RUNS = [(f"{setting}-{nb.stem}", setting, nb.stem, {}) for setting in ("ci", "gpu", "cpu") for nb in NOTEBOOKS]
RUNS += [
    ("gpu-3_tune_bert-modernbert", "gpu", "3_tune_bert", {"COURSE_MODEL": "answerdotai/ModernBERT-base"}),
    ("gpu-7_tune_generative_llm-qwen", "gpu", "7_tune_generative_llm", {"COURSE_LLM_MODEL": "Qwen/Qwen2.5-0.5B-Instruct"}),
    ("gpu-fp32-3_tune_bert", "gpu-fp32", "3_tune_bert", {}),
    ("gpu-fp32-4_tune_bert_nli", "gpu-fp32", "4_tune_bert_nli", {}),
    # Notebook 7 alone in a fresh results folder, as on a new Colab runtime: reference rows stand in.
    ("ci-fresh-7_tune_generative_llm", "ci-fresh", "7_tune_generative_llm", {}),
]
# The second built-in task: every notebook of a task, in ci mode; notebook 4 also alone, where no
# figures of the paper may stand in (they are the military task's).
PROTECTIONISM = {"COURSE_TASK": "manifesto-protectionism"}
RUNS += [(f"ci-protectionism-{nb.stem}", "ci-protectionism", nb.stem, PROTECTIONISM)
         for nb in NOTEBOOKS if nb.stem[0] in "34567"]
RUNS += [("ci-protectionism-fresh-4_tune_bert_nli", "ci-protectionism-fresh", "4_tune_bert_nli", PROTECTIONISM)]

# The quick tier (`make test`) runs each notebook once, in ci mode, each in a results folder of its own, as
# each notebook runs on a Colab runtime of its own: no run depends on another, so they spread over the
# workers. The other settings chain their notebooks in one folder (notebook 6 reads what notebook 5
# saved, notebook 7 compares with notebook 3's row): each such setting is one group, run in order on one
# worker (tests/conftest.py, worker_group, reads the setting from the run id). They are the full tier
# (`make test-all`, marked `full`).
INDEPENDENT = "ci"


def run_param(run_id: str, setting: str, notebook: str, extra: dict[str, str]):
    """One RUNS entry as a pytest parameter, with its tier."""
    marks = [] if setting == INDEPENDENT else [pytest.mark.full]
    return pytest.param(run_id, setting, notebook, extra, marks=marks, id=run_id)


@pytest.fixture(scope="session")
def fixture_env() -> dict[str, dict[str, str]]:
    """The environment of each fixture setting: the hub cache, and its all-float32 twin."""
    import hub_fixture  # tests/hub_fixture.py

    return {"hub": hub_fixture.build(ROOT / "build" / "hub-fixture"),
            "fp32": hub_fixture.build(ROOT / "build" / "hub-fixture-fp32", all_fp32=True)}


def kernel_env(setting: str, run_dir: pathlib.Path, extra: dict[str, str], fixture_env: dict) -> dict[str, str]:
    """The kernel's whole environment for one run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
    env.pop("CI", None)  # the mode is forced below; CI=true must not pick ci mode for the gpu/cpu runs
    env.update({
        "COURSE_RESULTS_DIR": str(run_dir / "results"),
        "COURSE_NETWORK_GUARD_LOG": str(run_dir / "network-guard.log"),
        "PYTHONPATH": os.pathsep.join([str(GUARD_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        # One review dataset per setting and task: their embeddings and labels differ, so they cannot share
        # one. "{task}" is left for notebook 6 to fill in, as in its own default.
        "COURSE_DATASET_NAME": f"label-review-{setting}-{{task}}",
    })
    if "COURSE_CACHE_DIR" in os.environ:  # the converted ci stand-in lives there
        env["COURSE_CACHE_DIR"] = os.environ["COURSE_CACHE_DIR"]
    if setting.startswith("ci"):
        env["COURSE_MODE"] = "ci"
    else:
        env.update(fixture_env["fp32" if setting.endswith("fp32") else "hub"])
        env.update(FIXTURE_SIZES)
        env["COURSE_MODE"] = setting.split("-")[0]
    env.update(extra)
    return env


def probe(nb: nbformat.NotebookNode, mark: str = PROBE_MARK) -> dict:
    """The JSON the probe cell (or another appended cell, by its `mark`) printed, from the executed notebook."""
    for cell in nb.cells[-2:]:  # the two cells the test appends: the probe, then the self-check trials
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith(mark):
                    return json.loads(line.removeprefix(mark))
    raise AssertionError(f"no line {mark.strip()!r} in the appended cells: the notebook stopped before its end")


# Warnings a student should never see, and why they would appear.
UNWANTED_WARNINGS = {
    "IProgress not found": "ipywidgets is missing, so Jupyter shows no progress bars",
    "pin_memory": "pinned memory was asked for without a GPU (set dataloader_pin_memory)",
}


def is_plot_cell(source: str) -> bool:
    """A cell that draws: a course plot helper or pandas/matplotlib plotting, not a plot in a comment."""
    code = "\n".join(line.split("#")[0] for line in source.splitlines())
    return any(token in code for token in ("utils.plot_", ".plot(", ".plot.", "plt."))


def output_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Tracebacks on stderr and plotting cells without an image, by cell."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        for output in outputs:
            if output.get("output_type") == "error":
                problems.append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}")
            if output.get("name") == "stderr" and "Traceback (most recent call last)" in output.get("text", ""):
                problems.append(f"cell {index}: a traceback on stderr: {output['text'][-300:]}")
            for warning in UNWANTED_WARNINGS:
                if output.get("name") == "stderr" and warning in output.get("text", ""):
                    problems.append(f"cell {index}: warns {warning!r}: {UNWANTED_WARNINGS[warning]}")
        if is_plot_cell(cell.source) and not any("image/png" in o.get("data", {}) for o in outputs):
            problems.append(f"cell {index} draws a plot but shows no image: {cell.source[:80]!r}")
    return problems


def results_problems(log: pd.DataFrame, notebook: str, n_test: int, mode: str, task: str | None) -> list[str]:
    """Rows of the results log that are missing, out of range or of another task, for this notebook's run."""
    rows = log[log["notebook"] == notebook]
    problems = [f"no results-log row for {a!r}" for a in run_course.missing_results(rows, notebook, mode)]
    for _, row in rows.iterrows():
        if task is not None and row["task"] != task:
            problems.append(f"{row['approach']}: logged for the task {row['task']!r}, but the notebook ran {task!r}")
        if not 0.0 <= float(row["f1_macro"]) <= 1.0:
            problems.append(f"{row['approach']}: f1_macro {row['f1_macro']} outside [0, 1]")
        if int(row["n_test"]) != n_test:
            problems.append(f"{row['approach']}: n_test {row['n_test']} but N_TEST is {n_test}")
    return problems


def check_probe(notebook: str, facts: dict, setting: str, log: pd.DataFrame) -> list[str]:
    """The per-notebook facts the probe read from the kernel; `log` is the run folder's whole results log."""
    problems = []
    settings = facts["settings"]
    task = facts.get("task") or DEFAULT_TASK
    if facts["mode"] != setting.split("-")[0]:
        problems.append(f"ran in {facts['mode']} mode, expected {setting}")
    if facts.get("task") is not None and facts["task"] != load_task(settings["TASK"]).name:
        problems.append(f"ran the task {facts['task']!r}, but TASK is {settings['TASK']!r}")
    # A task without the paper's figures (they are the military task's) must never show them as its own.
    referenced = {a: s for a, s in facts.get("sources", {}).items() if any(x.startswith("reference") for x in s)}
    if referenced and reference_results(task=task).empty:
        problems.append(f"the comparison shows reference rows for {sorted(referenced)}, but the paper's figures are "
                        f"not for the task {task!r}")
    labels = list(load_task(settings["TASK"]).labels) if "TASK" in settings else []
    if notebook == "2_inside_transformers":
        if not facts["by_hand"] < 1e-5:
            problems.append(f"the head computed by hand differs from the model's by {facts['by_hand']}")
        if facts["n_attentions"] != facts["n_layers"]:
            problems.append(f"{facts['n_attentions']} attention maps for {facts['n_layers']} layers")
    if notebook == "3_tune_bert" and facts["labels"] != labels:
        problems.append(f"the model's labels are {facts['labels']}, not the task's {labels}")
    if notebook == "5_data_quality_cleanlab" and not set(facts["issue_labels"]) <= set(labels):
        problems.append(f"the label-issue table has labels {facts['issue_labels']}, not the task's {labels}")
    if notebook == "6_annotation_argilla" and "question_labels" in facts:
        if facts["question_labels"] != labels or not facts["dataset"].endswith(f"-{task}"):
            problems.append(f"the review dataset {facts['dataset']!r} asks for {facts['question_labels']}: "
                            f"expected the task's labels {labels}, and the task's name in the dataset's")
    if notebook == "4_tune_bert_nli":  # the learning-curve budget rule: at least MIN_STEPS optimiser steps
        per_epoch = math.ceil(facts["n_pairs"] / settings["BATCH_SIZE"])
        if facts["epochs"] != max(settings["EPOCHS"], math.ceil(settings["MIN_STEPS"] / per_epoch)):
            problems.append(f"{facts['epochs']} epochs for {facts['n_pairs']} pairs: not the MIN_STEPS rule")
        if facts["steps"] != facts["epochs"] * per_epoch:
            problems.append(f"{facts['steps']} optimiser steps, expected {facts['epochs']} x {per_epoch}")
    if notebook in ("3_tune_bert", "4_tune_bert_nli") and facts["weights_dtype"] != "torch.float32":
        problems.append(f"trained weights are {facts['weights_dtype']}, not torch.float32")
    if notebook in ("5_data_quality_cleanlab", "6_annotation_argilla"):
        expected = {"text", "label_text", "suggested_label", "label_quality", "is_label_issue", "embedding"}
        if missing := expected - set(facts["issue_columns"]):
            problems.append(f"label-issue table lacks {sorted(missing)}")
        if facts["issue_rows"] != settings["N_TRAIN"]:
            problems.append(f"label-issue table has {facts['issue_rows']} rows, N_TRAIN is {settings['N_TRAIN']}")
    if notebook == "6_annotation_argilla":
        chained = setting != INDEPENDENT  # notebook 5 ran before it in the same folder
        if chained and facts["issues_source"] != "read from notebook 5's file":
            problems.append(f"notebook 5 ran first in this folder, but notebook 6's examples were {facts['issues_source']!r}")
        if not facts["on_server"]:
            problems.append("the notebook fell back to annotating in the notebook: the test server did not answer")
            return problems
        annotators = sorted({name for name, _ in facts["server_answers"]})
        if setting.split("-")[0] == "ci":  # two stand-ins answer every record; everything after uses their answers
            if annotators != ["stand-in-annotator-1", "stand-in-annotator-2"]:
                problems.append(f"answers on the server by {annotators}, expected the two stand-ins")
            if facts["reviewed"] != settings["N_REVIEW"] or facts["found"] != facts["reviewed"]:
                problems.append(f"{facts['reviewed']} records reviewed (N_REVIEW is {settings['N_REVIEW']}), "
                                f"{facts['found']} found in the training data")
            if facts["responses"] != 2 * settings["N_REVIEW"]:
                problems.append(f"{facts['responses']} submitted answers read back, expected {2 * settings['N_REVIEW']}")
            if facts["reviewed_rows_logged"] == 0:
                problems.append("the reviewed labels were not logged in the results log")
        else:  # gpu/cpu: nobody answers on the student's behalf, and the cells after the pause cope with no answers
            if facts["server_answers"]:
                problems.append(f"{len(facts['server_answers'])} answers on the server by {annotators}: the notebook "
                                "answered on the student's behalf")
            if facts["responses"] or facts["reviewed"]:
                problems.append(f"{facts['responses']} answers, {facts['reviewed']} records reviewed: expected none")
            if facts["reviewed_rows_logged"]:
                problems.append("reviewed labels were logged although nobody reviewed anything")
    if notebook == "7_tune_generative_llm":
        if facts["merged_agrees"] != 1.0:
            problems.append(f"the merged model agrees with the adapter on {facts['merged_agrees']:.0%}, not 100%")
        if not facts["scores_finite"]:
            problems.append("a label score is not finite")
        # The course comparison: your rows where notebook 3 logged BERT for this task in this results folder,
        # else the paper's, where it has figures for the task.
        bert_sources = facts["sources"].get(APPROACH_BERT, [])
        bert_logged = bool(len(log)) and ((log["approach"] == APPROACH_BERT) & (log["mode"] == facts["mode"])
                                          & (log["task"].fillna(DEFAULT_TASK) == task)).any()
        paper_has_bert = (reference_results(task=task)["approach"] == APPROACH_BERT).any()
        if bert_logged and bert_sources != [SOURCE_YOURS]:
            problems.append(f"notebook 3 logged BERT in this folder, but the comparison shows {bert_sources}")
        if not bert_logged and paper_has_bert and not (bert_sources and all(s.startswith("reference")
                                                                            for s in bert_sources)):
            problems.append(f"no BERT row of yours: the comparison should show the reference rows, got {bert_sources}")
        if setting.endswith("fresh") and bert_logged:
            problems.append("the fresh results folder was not fresh")
        hours = facts["corpus_hours"]
        if not hours or not all(math.isfinite(h) and h > 0 for h in hours):
            problems.append(f"the corpus cost table has hours that are not positive numbers: {hours}")
        if any(s != SOURCE_YOURS for s in facts["sources"].get(APPROACH_LLM_LORA, [])):
            problems.append("the LLM's own rows were mixed with other sources")
    return problems


_CLEANED: set[pathlib.Path] = set()


def fresh_run_dir(setting: str, notebook: str) -> pathlib.Path:
    """The run's folder, emptied on its first use in this session: notebook 6 reads notebook 5's
    label-issue file from the results folder, so an older run's file must not be there.

    A chained setting's notebooks share one folder (and run on one worker, in order); an independent
    ci run has a folder of its own.
    """
    run_dir = RUNS_DIR / setting / notebook if setting == INDEPENDENT else RUNS_DIR / setting
    if run_dir not in _CLEANED:
        shutil.rmtree(run_dir, ignore_errors=True)
        _CLEANED.add(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


@pytest.mark.parametrize("run_id, setting, notebook, extra", [run_param(*run) for run in RUNS])
def test_notebook_run(run_id, setting, notebook, extra, request):
    env_fixture = {} if setting.startswith("ci") else request.getfixturevalue("fixture_env")
    if notebook == "6_annotation_argilla" and not os.environ.get("ARGILLA_API_URL"):
        pytest.fail("notebook 6 needs an Argilla server: run through `make test`, which starts the test server, "
                    "or set ARGILLA_API_URL and ARGILLA_API_KEY")
    run_dir = fresh_run_dir(setting, notebook)
    guard_log = run_dir / "network-guard.log"
    guard_log.unlink(missing_ok=True)
    env = kernel_env(setting, run_dir, extra, env_fixture)

    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    source = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    row = run_course.run_notebook(ROOT / "notebooks" / f"{notebook}.ipynb", run_dir, timeout=600, env=env,
                                  extra_cells=[probe_cell(notebook), self_checks.trial_cell(source)])
    executed_path = run_dir / f"{run_id}.ipynb"
    os.replace(run_dir / f"{notebook}.ipynb", executed_path)
    with open(RUNS_DIR / "timings.csv", "a", encoding="utf-8") as timings:  # one short line: appends from
        timings.write(f"{run_id},{row['seconds']},{row['status']}\n")       # several workers do not mix

    assert not guard_log.exists(), f"the notebook tried to reach the network:\n{guard_log.read_text()[:3000]}"
    assert row["status"] == "ok", f"{run_id}: {row['status']} (executed copy: {executed_path})"
    nb = nbformat.read(executed_path, as_version=4)
    facts = probe(nb)
    this_run = run_course.logged_since(since, env)
    whole_log = run_course.logged_since("", env)
    problems = (output_problems(nb) + check_probe(notebook, facts, setting, whole_log)
                + self_checks.verdict_problems(probe(nb, self_checks.TRIAL_MARK))
                + results_problems(this_run, notebook, int(facts["settings"].get("N_TEST", 0)), facts["mode"],
                                   facts.get("task")))
    assert not problems, f"{run_id} (executed copy: {executed_path}):\n- " + "\n- ".join(problems)
