"""Notebook 6 with no Argilla server: it falls back to the form in the notebook, and a student's round works.

The run is what a student without a server does, in ci mode and with no stand-in annotators:
"Run all" before annotating (every cell after the pause cell must say "no answers yet" and log
nothing), then clicks in the form, then a rerun from the pause cell down. The clicks and the
rerun are cells appended to the run (the notebook itself stays free of test code): they set the
form's name box and click its buttons from code, then run the notebook's own cells from the
pause cell to the results-log cell again. The checks read the executed notebook and what the
kernel printed.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import time

import nbformat
import pandas as pd
import pytest

from test_notebook_runs import GUARD_DIR, RUNS_DIR, output_problems
from utils import annotation, default_task, run_course

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "6_annotation_argilla.ipynb"
MARK = "NO_SERVER_PROBE "

# What the kernel knows, as one JSON line: read after "Run all", and again after the clicks and the rerun.
PROBE = (
    "import json as _json\n"
    "_log = utils.read_results()\n"
    f"print({MARK!r} + _json.dumps({{"
    "'on_server': client is not None, 'dataset_type': type(dataset).__name__, 'n_review': S.N_REVIEW, "
    "'n_test': S.N_TEST, 'responses': len(responses), 'reviewed': len(corrections), "
    "'found': int(summary.loc['found in the training data', 'rows']), "
    "'annotators': sorted(set(responses['annotator'])), "
    "'agreement_rows': list(utils.agreement_table(responses).index), "
    "'you_labels': responses.loc[responses['annotator'] == 'you', 'label'].tolist(), "
    "'answers_on_disk': len(utils.NotebookDataset(dataset.folder, dataset.labels).answers), "  # read from the file
    "'logged': _log.loc[_log['approach'] == utils.APPROACH_EMBEDDINGS_REVIEWED, 'n_test'].tolist()}))"
)

# A student at the form: "you" submits every record but the last, in turn each label, and discards the
# last; then a classmate types their name and submits the first label for three records.
CLICKS = """\
labels = list(form.buttons)
for i in range(len(dataset.records) - 1):
    form.buttons[labels[i % len(labels)]].click()
form.discard_button.click()
form.name.value = "classmate"
for _ in range(3):
    form.buttons[labels[0]].click()
print(form.message.value)
"""


def rerun_from_the_pause_cell() -> list[str]:
    """The notebook's code cells from the pause cell down to the results-log cell: what a student reruns."""
    code = [cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells if cell.cell_type == "code"]
    start = next(i for i, source in enumerate(code) if "utils.annotation_progress(" in source)
    end = next(i for i, source in enumerate(code) if "utils.log_result(" in source)
    assert start < end, "the pause cell must come before the results-log cell"
    return code[start:end + 1]


def probes(nb: nbformat.NotebookNode) -> list[dict]:
    return [json.loads(line.removeprefix(MARK)) for cell in nb.cells for output in cell.get("outputs", [])
            for line in output.get("text", "").splitlines() if line.startswith(MARK)]


def cell_text(nb: nbformat.NotebookNode, needle: str) -> str:
    """Everything the first code cell whose source contains `needle` printed or displayed as text."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)
    return "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))


# A second run of notebook 6 (the in-notebook form instead of a server): the full tier.
@pytest.mark.full
def test_without_a_server_the_student_annotates_in_the_notebook_form():
    run_dir = RUNS_DIR / "ci-no-server"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    guard_log = run_dir / "network-guard.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSE_", "ARGILLA_")) and k != "CI"}
    env.update({
        "COURSE_MODE": "ci", "COURSE_RESULTS_DIR": str(run_dir / "results"),
        "COURSE_NETWORK_GUARD_LOG": str(guard_log),
        "PYTHONPATH": os.pathsep.join([str(GUARD_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "COURSE_STAND_IN_ANNOTATORS": "0",  # ci mode's stand-ins would answer before the student: not here
    })
    if "COURSE_CACHE_DIR" in os.environ:
        env["COURSE_CACHE_DIR"] = os.environ["COURSE_CACHE_DIR"]

    started = time.perf_counter()
    row = run_course.run_notebook(NOTEBOOK, run_dir, timeout=600, env=env,
                                  extra_cells=[PROBE, CLICKS, *rerun_from_the_pause_cell(), PROBE])
    print(f"notebook 6 without a server: {time.perf_counter() - started:.0f} s")
    executed = run_dir / NOTEBOOK.name

    assert not guard_log.exists(), f"the notebook tried to reach the network:\n{guard_log.read_text()[:3000]}"
    assert row["status"] == "ok", f"{row['status']} (executed copy: {executed})"
    nb = nbformat.read(executed, as_version=4)
    assert not (problems := output_problems(nb)), problems

    # It said why it fell back, and showed the form.
    assert "Why not on the server: No Argilla server is configured" in cell_text(nb, "utils.connect_or_fall_back(")
    form_cell = next(c for c in nb.cells if c.cell_type == "code" and "utils.AnnotationForm(" in c.source)
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in form_cell.outputs)

    before, after = probes(nb)
    n = before["n_review"]
    # "Run all" before annotating: nothing answered, nothing logged, and the cells said what to do.
    assert (before["on_server"], before["dataset_type"]) == (False, "NotebookDataset")
    assert (before["responses"], before["reviewed"], before["answers_on_disk"], before["logged"]) == (0, 0, 0, [])
    assert "No submitted answers yet (0 of" in cell_text(nb, "utils.annotation_progress(")
    assert annotation.NO_ANSWERS_YET in cell_text(nb, "responses = utils.submitted_responses(")
    assert annotation.NO_ANSWERS_YET in cell_text(nb, "utils.log_result(")

    # After the clicks and the rerun: the same table as from a server, and everything after it.
    labels = list(default_task().labels)  # the notebook runs the default task
    assert after["annotators"] == ["classmate", "you"]
    assert after["you_labels"] == [labels[i % len(labels)] for i in range(n - 1)]
    assert after["responses"] == (n - 1) + 3
    assert after["reviewed"] == after["found"] == n - 1  # the discarded record has no label
    assert after["answers_on_disk"] == n + 3  # every click was saved, the discard too
    assert "classmate vs you" in after["agreement_rows"] and "majority vote vs given label" in after["agreement_rows"]
    assert after["logged"] == [after["n_test"]]  # one results-log row, written by the rerun


def test_the_run_checks_catch_answers_given_on_the_students_behalf():
    """The notebook-6 checks of tests/test_notebook_runs.py, on made-up probe facts: they can fail."""
    from test_notebook_runs import check_probe as check_run

    def check_probe(notebook: str, facts: dict, setting: str) -> list[str]:
        return check_run(notebook, facts, setting, pd.DataFrame())  # the whole results log: unused for notebook 6

    settings = {"N_TRAIN": 48, "N_REVIEW": 10}
    nobody = {"settings": settings, "mode": "cpu", "issue_columns": ["text", "label_text", "suggested_label",
              "label_quality", "is_label_issue", "embedding"], "issue_rows": 48, "reviewed": 0, "found": 0,
              "responses": 0, "on_server": True, "server_answers": [], "reviewed_rows_logged": 0,
              "issues_source": "read from notebook 5's file"}
    assert check_probe("6_annotation_argilla", nobody, "cpu") == []
    # In a chained setting notebook 5 ran first in the same folder: finding the examples again means it missed them.
    found_again = {**nobody, "issues_source": "found again here"}
    assert any("notebook 5 ran first" in p for p in check_probe("6_annotation_argilla", found_again, "cpu"))
    stand_ins = {**nobody, "server_answers": [["stand-in-annotator-1", "submitted"]] * 10, "responses": 10,
                 "reviewed": 10, "found": 10, "reviewed_rows_logged": 1}
    problems = check_probe("6_annotation_argilla", stand_ins, "cpu")
    assert any("on the student's behalf" in p for p in problems) and len(problems) == 3
    fell_back = {**nobody, "on_server": False, "server_answers": None}
    assert "test server did not answer" in check_probe("6_annotation_argilla", fell_back, "cpu")[0]
    ci = {**stand_ins, "mode": "ci", "server_answers": [["stand-in-annotator-1", "submitted"],
                                                         ["stand-in-annotator-2", "submitted"]] * 10, "responses": 20}
    assert check_probe("6_annotation_argilla", ci, "ci") == []
    assert check_probe("6_annotation_argilla", {**ci, "reviewed_rows_logged": 0}, "ci") != []


def test_the_course_run_expects_the_reviewed_row_only_in_ci_mode():
    """utils.run_course: in gpu/cpu mode nobody answers for the student, so notebook 6 may log no reviewed row."""
    nothing = pd.DataFrame(columns=["notebook", "approach"])
    assert run_course.missing_results(nothing, "6_annotation_argilla") == [annotation.APPROACH_EMBEDDINGS_REVIEWED]
    assert run_course.missing_results(nothing, "6_annotation_argilla", "ci") == [
        annotation.APPROACH_EMBEDDINGS_REVIEWED]
    assert run_course.missing_results(nothing, "6_annotation_argilla", "gpu") == []
    assert len(run_course.missing_results(nothing, "3_tune_bert", "cpu")) == 2  # the other notebooks: unchanged
    assert run_course.kernel_mode({"COURSE_MODE": "cpu", "CI": "true"}) == "cpu"
    assert run_course.kernel_mode({"CI": "true"}) == "ci"
