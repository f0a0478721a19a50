"""utils/task.py: a task is data. Built-in tasks, your own task file, its generated defaults and its errors.

The last test runs notebook 3 (ci mode) on the example task file, data/example_task/task.json: a
CSV with other column names and four labels, as a self-learner would bring.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import time
import warnings

import nbformat
import pandas as pd
import pytest

import utils
from utils import data, llm, modes, task as task_module
from utils.data import DataError
from utils.task import Task, TaskError

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "data" / "example_task" / "task.json"


@pytest.fixture(autouse=True)
def ci_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_MODE", "ci")
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("COURSE_DATA_URL", raising=False)


def own_csv(folder: pathlib.Path, name: str, labels: list[str], **extra_columns) -> pathlib.Path:
    """A CSV with a self-learner's column names: sentence, before, category (and `extra_columns`)."""
    frame = pd.DataFrame({"sentence": [f"{name} sentence {i}." for i in range(len(labels))],
                          "before": [f"{name} before {i}." for i in range(len(labels))],
                          "category": labels, **extra_columns})
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


def own_task_file(folder: pathlib.Path, **fields) -> pathlib.Path:
    """A task file in `folder` for own_csv's columns; `fields` add to or replace its entries."""
    content = {"name": "my-task", "text_column": "sentence", "before_column": "before", "label_column": "category",
               "files": {"train": "train.csv", "test": "test.csv"}, **fields}
    path = folder / "task.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def quietly(function, *args, **kwargs):
    """Call `function` with the generated-defaults warnings silenced (tests of other things)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


# ---------------------------------------------------------------- the built-in tasks


def test_the_default_task_is_military_and_gives_the_old_module_names():
    military = utils.load_task(None)
    assert military.name == utils.DEFAULT_TASK == "manifesto-military"
    assert list(military.labels) == utils.LABELS == ["Military: Negative", "Military: Positive", "Other"]
    assert military.label2id == utils.LABEL2ID and military.id2label == utils.ID2LABEL
    assert dict(military.hypotheses) == utils.HYPOTHESES and dict(military.answers) == utils.ANSWERS
    assert military.instruction == utils.INSTRUCTION and military.guidelines == utils.annotation.GUIDELINES
    assert military.generated == ()  # everything written by hand, nothing generated
    assert llm.LETTERS == {"A": "Military: Positive", "B": "Military: Negative", "C": "Other"}


def test_protectionism_is_the_papers_second_task_with_its_own_texts():
    trade = utils.load_task("manifesto-protectionism")
    military = utils.default_task()
    # The published files' ids: Other 0, Negative 1, Positive 2 (alphabetical, as in the military files).
    assert trade.labels == ("Other", "Protectionism: Negative", "Protectionism: Positive")
    assert trade.generated == ()
    assert set(trade.hypotheses.values()).isdisjoint(military.hypotheses.values())
    assert trade.instruction != military.instruction and "protectionism" in trade.instruction
    assert trade.letters == {"A": "Protectionism: Positive", "B": "Protectionism: Negative", "C": "Other"}
    assert trade.data_files("gpu")["train"].endswith("/data_clean/df_manifesto_protectionism_train.csv")


@pytest.mark.parametrize("name", list(task_module.BUILT_IN_TASKS))
def test_each_built_in_task_runs_offline_on_its_synthetic_slices(name, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_URL", "http://127.0.0.1:9/unreachable/")  # ci mode never downloads
    built_in = utils.load_task(name)
    splits = utils.course_splits(40, 30, seed=42, n_valid=10, task=built_in)
    assert {split: len(df) for split, df in splits.items()} == {"train": 40, "valid": 10, "test": 30}
    for df in splits.values():
        assert set(df["label_text"]) == set(built_in.labels)
        assert (df["label"] == df["label_text"].map(built_in.label2id)).all()
    files = built_in.data_files()
    assert files["train"] == str(ROOT / "data" / name.replace("-", "_") / "train.csv")


def test_outside_ci_a_built_in_task_reads_its_files_under_data_url_or_the_mirror(monkeypatch):
    trade = utils.load_task("manifesto-protectionism")
    assert trade.data_files("cpu")["test"] == trade.data_url + "df_manifesto_protectionism_test.csv"
    monkeypatch.setenv("COURSE_DATA_URL", "https://mirror.example.org/course")
    assert trade.data_files("cpu")["test"] == "https://mirror.example.org/course/df_manifesto_protectionism_test.csv"


# ---------------------------------------------------------------- your own task


def test_the_example_task_file_reads_other_columns_and_four_labels():
    example = quietly(utils.load_task, str(EXAMPLE.relative_to(ROOT)))
    assert example.name == "council-topics" and len(example.labels) == 4
    train = utils.load_course_data("train", example)
    raw = pd.read_csv(ROOT / "data" / "example_task" / "train.csv")
    assert train["text_original"].tolist() == raw["sentence"].tolist()
    assert train["text_preceding"].tolist() == raw["previous_sentence"].fillna("").tolist()
    assert (train["text_following"] == "").all()  # the task has no sentence after: empty context
    assert train["label_text"].tolist() == raw["policy_area"].tolist() and "town" in train.columns


def test_a_task_file_leaving_texts_out_gets_them_generated_with_a_warning(tmp_path):
    own_csv(tmp_path, "train", ["Housing", "Transport", "Environment", "Other"])
    path = own_task_file(tmp_path, labels={"Housing": "rents or new homes", "Transport": "buses or roads",
                                           "Environment": "parks or pollution", "Other": ""})
    with pytest.warns(UserWarning, match=r"'my-task': hypotheses, answers, instruction, short_instruction, "
                                         r"system_prompt, guidelines generated") as caught:
        mine = task_module.task_from_file(path)
    assert pathlib.Path(caught[0].filename).name == "test_task.py"  # shown at the caller's line, not inside utils
    assert mine.generated == ("hypotheses", "answers", "instruction", "short_instruction", "system_prompt",
                              "guidelines")
    assert mine.hypotheses["Housing"] == "The quote is about rents or new homes."
    assert mine.hypotheses["Other"] == "The quote is about none of these: Housing, Transport or Environment."
    assert mine.answers == {"Housing": "housing", "Transport": "transport", "Environment": "environment",
                            "Other": "other"}
    assert "D) other: the quote is about none of these" in mine.instruction
    assert "The sentence before it is there to help you" in mine.instruction  # only a context column before
    assert "* **Transport** - the quote is about buses or roads." in mine.guidelines
    messages = llm.build_messages({"text_original": "Q.", "text_preceding": "", "text_following": ""}, task=mine)
    assert messages[-1]["content"].endswith("Answer with one word: housing, transport, environment or other.")
    assert llm.parse_answer("d)", mine) == "Other" and llm.parse_answer("Transport.", mine) == "Transport"
    assert llm.parse_answer("housing or transport", mine) is None


def test_labels_are_found_in_the_train_file_when_the_task_gives_none(tmp_path):
    own_csv(tmp_path, "train", ["b", "a", "c", "a"])
    with pytest.warns(UserWarning, match=r"names no labels, so they come from its train file: \['a', 'b', 'c'\]"):
        mine = Task(name="found", files={"train": "train.csv", "test": "test.csv"}, folder=tmp_path,
                    text_column="sentence", label_column="category")
    assert mine.labels == ("a", "b", "c") and mine.label2id == {"a": 0, "b": 1, "c": 2}


def test_one_python_call_describes_a_task_too(tmp_path):
    own_csv(tmp_path, "train", ["yes", "no"] * 3)
    own_csv(tmp_path, "test", ["no", "yes"])
    mine = quietly(Task, name="yes-no", labels=["no", "yes"], text_column="sentence", label_column="category",
                   files={"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")})
    splits = utils.course_splits(4, 2, seed=1, task=mine, context=False)
    assert splits["train"]["label"].map(mine.id2label).tolist() == splits["train"]["label_text"].tolist()
    assert splits["test"]["text"].str.startswith("test sentence").all()
    changed = dataclasses.replace(mine, hypotheses={"no": "The quote says no.", "yes": "The quote says yes."})
    assert changed.hypotheses["yes"] == "The quote says yes." and changed.labels == mine.labels


def test_a_task_file_uses_its_own_files_in_every_mode(tmp_path):
    mine = quietly(task_module.task_from_file, own_task_file(tmp_path, labels=["a", "b"]))
    assert mine.data_files("ci") == mine.data_files("gpu") == {"train": str(tmp_path / "train.csv"),
                                                               "test": str(tmp_path / "test.csv")}
    with_slices = quietly(task_module.task_from_file,
                          own_task_file(tmp_path, labels=["a", "b"], ci_files={"train": "small.csv", "test": "s.csv"}))
    assert with_slices.data_files("ci")["train"] == str(tmp_path / "small.csv")
    assert with_slices.data_files("cpu")["train"] == str(tmp_path / "train.csv")


def test_a_task_is_found_by_name_path_or_folder(monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")  # where the notebooks run: a path from the repository still works
    by_path = quietly(utils.load_task, "data/example_task/task.json")
    by_folder = quietly(utils.load_task, "data/example_task")
    assert by_path is by_folder  # one cached Task: the notebook's header reuses the settings cell's
    assert utils.load_task(by_path) is by_path


# ---------------------------------------------------------------- bad input: each gets its named error


def test_a_label_in_the_data_that_the_task_lacks(tmp_path):
    own_csv(tmp_path, "train", ["a", "b", "c"])
    own_csv(tmp_path, "test", ["a", "b"])
    mine = quietly(task_module.task_from_file, own_task_file(tmp_path, labels=["a", "b"]))
    with pytest.raises(DataError, match=r"train\.csv has label\(s\) the task 'my-task' does not know: \['c'\] \(row 4\)\. "
                                        r"Known labels: \['a', 'b'\]\. Add them to the task's labels"):
        utils.course_splits(2, 2, seed=1, task=mine)


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_label_with_no_examples(tmp_path, split):
    own_csv(tmp_path, "train", ["a", "b", "c"] if split == "test" else ["a", "b"])
    own_csv(tmp_path, "test", ["a", "b", "c"] if split == "train" else ["a", "b"])
    mine = quietly(task_module.task_from_file, own_task_file(tmp_path, labels=["a", "b", "c"]))
    with pytest.raises(DataError, match=rf"has label\(s\) with no example in its {split} file .*: \['c'\]\. .*add rows "
                                        r"with these labels, or remove them from the task's labels"):
        utils.course_splits(2, 2, seed=1, task=mine)


def test_a_column_that_is_missing(tmp_path):
    own_csv(tmp_path, "train", ["a", "b"])
    mine = quietly(task_module.task_from_file, own_task_file(tmp_path, labels=["a", "b"], after_column="after"))
    with pytest.raises(DataError, match=r"train\.csv lacks the column\(s\) \['after'\] that the task 'my-task' names "
                                        r"\(.*'after_column': 'after'.*found: \['sentence', 'before', 'category'\]\)"):
        utils.load_course_data("train", mine)


def test_a_column_named_like_a_course_column_is_not_overwritten(tmp_path):
    own_csv(tmp_path, "train", ["a", "b"], text_original=["x", "y"])
    mine = quietly(task_module.task_from_file, own_task_file(tmp_path, labels=["a", "b"]))
    with pytest.raises(DataError, match=r"has the column\(s\) \['text_original'\], which the course uses for the "
                                        r"task's own columns"):
        utils.load_course_data("train", mine)


def test_a_task_with_fewer_than_two_labels(tmp_path):
    with pytest.raises(TaskError, match=r"Task 'my-task' has 1 label\(s\): \['a'\]\. Classifying needs at least 2"):
        task_module.task_from_file(own_task_file(tmp_path, labels=["a"]))
    own_csv(tmp_path, "train", ["a", "a"])
    with pytest.raises(TaskError, match=r"has 1 label\(s\) found in the train file: \['a'\]"):
        quietly(task_module.task_from_file, own_task_file(tmp_path))


@pytest.mark.parametrize("fields, message", [
    ({"labels": ["a", "b"], "hypotheses": {"a": "A.", "c": "C."}},
     r"`hypotheses` must have one entry for each label \['a', 'b'\]; these are not labels of the task: \['c'\]; "
     r"these labels lack one: \['b'\]"),
    ({"labels": ["a", "b"], "answers": {"a": "Yes", "b": "yes"}}, r"two labels have the same answer word"),
    ({"labels": ["a", "A"]}, r"the labels repeat \(upper and lower case count as the same\)"),
    ({"labels": ["a", "b"], "label_column": "sentence"}, r"each column can play one part only"),
    ({"labels": ["a", "b"], "files": {"train": "train.csv"}}, r"`files` must name a train and a test file.*it lacks "
                                                              r"\['test'\]"),
    ({"labels": ["a", "b"], "name": "my task"}, r"Task name 'my task': use letters, digits and - _ \. only"),
    ({"labels": ["a", "b"], "hypothesis": {}}, r"has key\(s\) the course does not know: \['hypothesis'\]"),
    ({"labels": "a, b"}, r"the wrong kind of value for labels"),
], ids=["hypotheses", "answers", "repeated-labels", "repeated-column", "files", "name", "typo", "labels-string"])
def test_a_bad_task_file_names_the_problem(tmp_path, fields, message):
    with pytest.raises(TaskError, match=message):
        quietly(task_module.task_from_file, own_task_file(tmp_path, **fields))


def test_a_task_file_that_is_not_json_or_not_there(tmp_path):
    path = tmp_path / "task.json"
    path.write_text('{"name": "x", "files": {"train": "a", "test": "b"},}', encoding="utf-8")
    with pytest.raises(TaskError, match=r"is not valid JSON: .* at line 1, column .*comma after the last entry"):
        task_module.task_from_file(path)
    with pytest.raises(TaskError, match=r"No task 'no-such-task': give a built-in task \(manifesto-military, "
                                        r"manifesto-protectionism\) or the path of a task file"):
        utils.load_task("no-such-task")


def test_a_key_given_twice_in_a_task_file_is_refused(tmp_path):
    # json.loads keeps the last of two equal keys without a word: here the first description would vanish.
    path = own_task_file(tmp_path)
    text = path.read_text(encoding="utf-8").replace(
        '"name"', '"labels": {"a": "about apples", "b": "about bees", "a": "about ants"}, "name"')
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TaskError, match=r"task\.json gives the key 'a' twice in one object \(\{'a': 'about apples', "
                                        r"'b': 'about bees', 'a': 'about ants'\}\)\. Keep one"):
        task_module.task_from_file(path)


# ---------------------------------------------------------------- where the task shows


def test_the_header_shows_the_task_and_its_labels(monkeypatch):
    monkeypatch.setenv("COURSE_TASK", "manifesto-protectionism")
    settings = utils.settings("3_tune_bert", TASK="manifesto-military", SEED=1)
    rows = modes.header_table(settings)[""]
    assert rows["task"].startswith("manifesto-protectionism: ")
    assert rows["labels (id: name)"] == "0: Other, 1: Protectionism: Negative, 2: Protectionism: Positive"
    assert rows["task data"].endswith("manifesto_protectionism/test.csv")
    assert "TASK=manifesto-protectionism" in rows["set by environment"]
    monkeypatch.delenv("COURSE_TASK")
    example = quietly(modes.header_table, utils.settings("3_tune_bert", TASK=str(EXAMPLE)))[""]
    assert example["task: generated, not given"].startswith("hypotheses, answers")


def test_each_task_keeps_its_own_label_issues_file(monkeypatch, tmp_path):
    assert utils.label_issues_path().name == "label_issues.parquet"  # the default task's, as before tasks
    assert utils.label_issues_path("manifesto-protectionism").name == "label_issues-manifesto-protectionism.parquet"


def test_the_notebook_run_checks_catch_another_tasks_figures_and_rows():
    """The task checks of tests/test_notebook_runs.py, on made-up probe facts: they can fail."""
    from test_notebook_runs import check_probe, results_problems

    reference = "reference (Laurer et al. 2023): DeBERTa-v3-base, mean of 3 seed(s)"
    budget = {"EPOCHS": 1, "MIN_STEPS": 8, "BATCH_SIZE": 16}  # 48 pairs: 3 steps per epoch, so 3 epochs, 9 steps
    trade = {"settings": {"TASK": "manifesto-protectionism", **budget}, "mode": "ci", "task": "manifesto-protectionism",
             "weights_dtype": "torch.float32", "sources": {utils.APPROACH_BERT: [reference]},
             "epochs": 3, "steps": 9, "n_pairs": 48}
    problems = check_probe("4_tune_bert_nli", trade, "ci", pd.DataFrame())
    assert problems == ["the comparison shows reference rows for ['BERT fine-tuned'], but the paper's figures are not "
                        "for the task 'manifesto-protectionism'"]
    military = {**trade, "settings": {"TASK": "manifesto-military", **budget}, "task": "manifesto-military"}
    assert check_probe("4_tune_bert_nli", military, "ci", pd.DataFrame()) == []
    assert "but TASK is 'manifesto-military'" in check_probe("4_tune_bert_nli", {**military, "task": "x"}, "ci",
                                                             pd.DataFrame())[0]
    rows = pd.DataFrame([{"notebook": "4_tune_bert_nli", "task": "manifesto-military", "approach": approach,
                          "f1_macro": 0.5, "n_test": 30}
                         for approach in (utils.APPROACH_NLI_ZERO_SHOT, utils.APPROACH_NLI)])
    assert results_problems(rows, "4_tune_bert_nli", 30, "ci", "manifesto-military") == []
    assert len(results_problems(rows, "4_tune_bert_nli", 30, "ci", "manifesto-protectionism")) == 2


def test_the_notebook_run_checks_catch_a_training_budget_that_breaks_the_min_steps_rule():
    from test_notebook_runs import check_probe

    facts = {"settings": {"TASK": "manifesto-military", "EPOCHS": 1, "MIN_STEPS": 8, "BATCH_SIZE": 16},
             "mode": "ci", "task": "manifesto-military", "weights_dtype": "torch.float32", "sources": {},
             "epochs": 3, "steps": 9, "n_pairs": 48}
    assert check_probe("4_tune_bert_nli", facts, "ci", pd.DataFrame()) == []
    assert "not the MIN_STEPS rule" in check_probe("4_tune_bert_nli", {**facts, "epochs": 1, "steps": 3}, "ci",
                                                   pd.DataFrame())[0]
    assert "optimiser steps" in check_probe("4_tune_bert_nli", {**facts, "steps": 6}, "ci", pd.DataFrame())[0]


# ---------------------------------------------------------------- notebook 3 on your own task


# A second run of notebook 3 (a variant, like the second-task runs): the full tier.
@pytest.mark.full
def test_notebook_3_runs_on_a_task_file_with_other_columns_and_four_labels():
    """The self-learner's path: a task file for their own CSV, run headless in ci mode with small sizes."""
    from test_notebook_runs import RUNS_DIR, check_probe, kernel_env, output_problems, probe, probe_cell, \
        results_problems
    from utils import run_course

    setting = "ci-example-task"
    run_dir = RUNS_DIR / setting
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    sizes = {"COURSE_N_TRAIN": "16", "COURSE_N_VALID": "8", "COURSE_N_TEST": "12", "COURSE_LEARNING_CURVE_SIZES": "16"}
    env = kernel_env(setting, run_dir, {"COURSE_TASK": str(EXAMPLE.relative_to(ROOT)), **sizes}, {})
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    row = run_course.run_notebook(ROOT / "notebooks" / "3_tune_bert.ipynb", run_dir, timeout=600, env=env,
                                  extra_cells=[probe_cell("3_tune_bert")])
    executed = run_dir / "3_tune_bert.ipynb"
    assert not (run_dir / "network-guard.log").exists(), "the notebook tried to reach the network"
    assert row["status"] == "ok", f"{row['status']} (executed copy: {executed})"
    nb = nbformat.read(executed, as_version=4)
    facts = probe(nb)
    assert facts["task"] == "council-topics" and facts["labels"] == ["Housing", "Transport", "Environment", "Other"]
    log = run_course.logged_since(since, env)
    problems = (output_problems(nb) + check_probe("3_tune_bert", facts, "ci", log)
                + results_problems(log, "3_tune_bert", 12, "ci", "council-topics"))
    assert not problems, problems
    assert set(log["n_train"]) == {16} and set(log["task"]) == {"council-topics"}
    settings_cell = next(c for c in nb.cells if c.cell_type == "code" and "utils.load_task(S.TASK)" in c.source)
    warned = "".join(o.get("text", "") for o in settings_cell.outputs if o.get("name") == "stderr")
    assert "generated from the label names and descriptions" in warned  # said in the notebook, where it matters
    assert os.environ.get("COURSE_TASK") is None  # the kernel's environment only: this process is untouched
