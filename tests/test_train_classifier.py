"""`python -m utils.train_classifier`: notebook 3's recipe trained with two CPU processes (DDP over
gloo), saved once by process 0, loadable for prediction; a killed run resumes; clear refusals."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest
import transformers

from utils import corpus_models, train_classifier

ROOT = pathlib.Path(__file__).resolve().parent.parent
LABELS = list(corpus_models.task_labels().labels)
MODEL_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "test_metrics.json"}


def _env(tmp_path: pathlib.Path) -> dict[str, str]:
    return {**os.environ, "COURSE_MODE": "ci", "PYTHONPATH": str(ROOT), "COURSE_RESULTS_DIR": str(tmp_path / "results"),
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


SMALL = ["--n-train", "16", "--n-valid", "8", "--n-test", "8", "--batch-size", "4"]


def test_two_processes_train_and_only_process_0_saves_a_model_that_predicts(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    output = tmp_path / "model"
    torchrun = pathlib.Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--log-dir", str(tmp_path / "logs"), "--redirects", "3",
         "-m", "utils.train_classifier", "--output-dir", str(output), *SMALL],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=400)
    logs = {rank: "".join(p.read_text() for p in sorted((tmp_path / "logs").rglob(f"attempt_0/{rank}/*.log")))
            for rank in (0, 1)}
    assert result.returncode == 0, result.stderr[-2000:] + logs[0][-2000:] + logs[1][-2000:]
    assert "(2 process(es)" in logs[0]  # one run of distributed data parallel, not two separate ones
    assert logs[0].count("saved the model and tokenizer") == 1 and "saved the model" not in logs[1]
    assert {p.name for p in output.iterdir()} == MODEL_FILES
    # No temporary folder, no checkpoints left beside the model.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "results") == ["logs", "model"]

    model = AutoModelForSequenceClassification.from_pretrained(output)
    assert [model.config.id2label[i] for i in range(len(LABELS))] == LABELS
    classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(output),
                        device="cpu")
    answers = classify(['The quote: "We will buy new frigates for the navy."', 'The quote: "Schools need teachers."'])
    assert all(answer["label"] in LABELS and 0 < answer["score"] <= 1 for answer in answers)
    metrics = json.loads((output / "test_metrics.json").read_text())
    assert 0 <= metrics["f1_macro"] <= 1 and 0 <= metrics["accuracy"] <= 1


def test_a_killed_training_run_resumes_from_its_last_checkpoint(tmp_path):
    output = tmp_path / "model"
    checkpoint = tmp_path / "model.checkpoints" / "checkpoint-2"  # 16 texts, batches of 8: 2 steps an epoch
    command = [sys.executable, "-m", "utils.train_classifier", "--output-dir", str(output), "--epochs", "2",
               "--n-train", "16", "--n-valid", "8", "--n-test", "8", "--batch-size", "8"]
    with open(tmp_path / "log.txt", "w") as log:
        process = subprocess.Popen(command, env=_env(tmp_path), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not (checkpoint / "trainer_state.json").exists():
            assert process.poll() is None, (tmp_path / "log.txt").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 5 minutes"
            time.sleep(0.05)
        time.sleep(0.2)  # let trainer_state.json be written to its end; then a hard kill, as a lost machine would
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not output.exists()

    result = subprocess.run(command, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {checkpoint}" in result.stdout
    assert {p.name for p in output.iterdir()} == MODEL_FILES
    assert not (tmp_path / "model.checkpoints").exists()


def _args(**overrides) -> argparse.Namespace:
    args = train_classifier.build_parser().parse_args(["--output-dir", "unused"])
    for name, value in overrides.items():
        setattr(args, name, value)
    return args


def test_a_non_empty_output_folder_is_never_overwritten_without_being_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "notes.txt").write_text("mine")
    with pytest.raises(train_classifier.TrainError, match="--overwrite"):
        train_classifier.train(_args(output_dir=str(tmp_path / "model")))
    assert (tmp_path / "model" / "notes.txt").read_text() == "mine"


def test_checkpoints_of_another_run_are_not_resumed(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    checkpoints = tmp_path / "model.checkpoints"
    checkpoints.mkdir()
    (checkpoints / "checkpoint-9").mkdir()
    with pytest.raises(train_classifier.TrainError, match="does not say which run"):
        train_classifier.train(_args(output_dir=str(tmp_path / "model")))
    (checkpoints / train_classifier.CHECKPOINT_JOB).write_text(json.dumps({"model": "another", "epochs": 9}))
    with pytest.raises(train_classifier.TrainError, match=r"another training run.*epochs 9 then, 1 now.*model 'another' then"):
        train_classifier.train(_args(output_dir=str(tmp_path / "model")))


def test_a_training_file_too_small_to_hold_out_validation_rows_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MODE", "ci")
    rows = (ROOT / "data" / "manifesto_military" / "train.csv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "mine.csv").write_text("\n".join(rows[:6]) + "\n", encoding="utf-8")
    code = train_classifier.main(["--output-dir", str(tmp_path / "model"), "--train-csv", str(tmp_path / "mine.csv")])
    assert code == 2
    assert "--valid-csv" in capsys.readouterr().err


# ---------------------------------------------------------------- the same run, and only the same run (issue 25)

# 8 texts in one batch of at most 32 tokens: one step an epoch, a checkpoint after each (seconds on a CPU).
TINY = ["--n-train", "8", "--n-valid", "4", "--n-test", "4", "--batch-size", "8", "--max-length", "32", "--epochs", "2"]


class _Killed(Exception):
    """Stands for the machine going away right after the first checkpoint was written."""


@pytest.fixture
def in_process(tmp_path, monkeypatch, tiny_encoder):
    """The command run in this process (no interpreter to start) in ci mode, on the tiny encoder."""
    for name, value in {"COURSE_MODE": "ci", "COURSE_RESULTS_DIR": str(tmp_path / "results"),
                        "TOKENIZERS_PARALLELISM": "false"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("COURSE_TASK", raising=False)
    monkeypatch.chdir(tmp_path)
    return lambda argv: train_classifier.main([*argv, "--model", tiny_encoder])


def _killed_after_the_first_checkpoint(monkeypatch, command, argv: list[str]) -> None:
    """Run `command` (in_process) with `argv` and stop it hard once the Trainer has written its first checkpoint."""
    save = transformers.Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(transformers.Trainer, "_save_checkpoint", save_then_die)
        with pytest.raises(_Killed):
            command(argv)


def _weights(folder: pathlib.Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_a_killed_run_is_resumed_only_by_the_same_task_data_and_recipe(tmp_path, in_process, monkeypatch, capsys):
    # The protectionism task as a task file of one's own, so that its data can be edited.
    task = tmp_path / "trade"
    shutil.copytree(ROOT / "data" / "manifesto_protectionism", task)
    output = tmp_path / "model"
    command = ["--output-dir", str(output), "--task", str(task / "task.json"), *TINY]
    _killed_after_the_first_checkpoint(monkeypatch, in_process, command)
    checkpoint = tmp_path / "model.checkpoints" / "checkpoint-1"
    assert (checkpoint / "trainer_state.json").exists() and not output.exists()
    capsys.readouterr()

    # Another task into the same output: refused, naming what differs and the ways out.
    assert in_process(["--output-dir", str(output), "--task", "manifesto-military", *TINY]) == 2
    error = capsys.readouterr().err
    assert "another training run" in error and "task 'manifesto-protectionism' then, 'manifesto-military' now" in error
    assert "labels [" in error and "--output-dir" in error and "--overwrite" in error
    # The same task, its labels in another order (so other label ids): refused.
    original = (task / "task.json").read_text(encoding="utf-8")
    fields = json.loads(original)
    fields["labels"] = dict(reversed(list(fields["labels"].items())))
    (task / "task.json").write_text(json.dumps(fields), encoding="utf-8")
    assert in_process(command) == 2
    assert "labels ['Other', 'Protectionism: Negative', 'Protectionism: Positive'] then" in capsys.readouterr().err
    (task / "task.json").write_text(original, encoding="utf-8")
    # The same task and settings, but the texts edited (same size, same modification time): refused.
    train_csv = task / "train.csv"
    text, stat = train_csv.read_text(encoding="utf-8"), train_csv.stat()
    assert text.count(" the ") > 10
    train_csv.write_text(text.replace(" the ", " thy "), encoding="utf-8")
    os.utime(train_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert in_process(command) == 2
    error = capsys.readouterr().err
    assert "the training and validation data differ" in error and "task '" not in error
    train_csv.write_text(text, encoding="utf-8")
    # Another recipe: refused.
    assert in_process([*command, "--learning-rate", "0.001"]) == 2
    assert "learning_rate 0.0001 then, 0.001 now" in capsys.readouterr().err
    assert (checkpoint / "trainer_state.json").exists()  # nothing refused touched the checkpoints

    # The same command resumes, and ends with the weights of a run that was never interrupted.
    assert in_process(command) == 0
    assert f"resuming from {checkpoint}" in capsys.readouterr().out
    assert in_process(["--output-dir", str(tmp_path / "straight"), *command[2:]]) == 0
    resumed, straight = _weights(output), _weights(tmp_path / "straight")
    assert resumed.keys() == straight.keys()
    assert all((resumed[name] == straight[name]).all() for name in resumed)


def test_overwrite_starts_over_instead_of_resuming_another_runs_checkpoints(tmp_path, in_process, monkeypatch,
                                                                            capsys):
    output = tmp_path / "model"
    _killed_after_the_first_checkpoint(monkeypatch, in_process, ["--output-dir", str(output), "--task",
                                                                 "manifesto-protectionism", *TINY])
    assert in_process(["--output-dir", str(output), *TINY, "--epochs", "1", "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "resuming" not in out and "another training run" in out
    config = json.loads((output / "config.json").read_text(encoding="utf-8"))
    assert list(config["id2label"].values()) == LABELS  # the military task's labels, trained from the start


def test_two_seeded_runs_give_identical_weights(tmp_path, in_process):
    for name in ("first", "second"):
        assert in_process(["--output-dir", str(tmp_path / name), *TINY, "--epochs", "1", "--seed", "7"]) == 0
    first, second = _weights(tmp_path / "first"), _weights(tmp_path / "second")
    assert first.keys() == second.keys()
    different = [name for name in first if not (first[name] == second[name]).all()]
    assert different == []  # the new classification head too: it is created after seeding


# ---------------------------------------------------------------- bad input: exit 2 and what to do (issue 25)


def _task_file(folder: pathlib.Path, **changes) -> pathlib.Path:
    """A copy of the military task's files in `folder`, its task file changed by `changes` (None: key removed)."""
    shutil.copytree(ROOT / "data" / "manifesto_military", folder)
    fields = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    fields.update(changes)
    (folder / "task.json").write_text(json.dumps(fields), encoding="utf-8")
    return folder / "task.json"


@pytest.mark.parametrize("case, message", [
    ("syntax", r"is not valid JSON: .* at line 1"),
    ("repeated-labels", r"the labels repeat"),
    ("missing-file", r"No data file at .*missing\.csv"),
    ("unknown-task", r"No task 'no-such-task': give a built-in task"),
    ("no-model-folder", r"--model .*no-such-model: no such folder"),
])
def test_bad_tasks_and_models_end_in_exit_2_with_the_problem_and_the_fix(tmp_path, in_process, capsys, case,
                                                                          message):
    args = ["--output-dir", str(tmp_path / "model"), *TINY]
    if case == "syntax":
        path = _task_file(tmp_path / "mine")
        path.write_text(path.read_text(encoding="utf-8").rstrip("}") + ",}", encoding="utf-8")
        args += ["--task", str(path)]
    elif case == "repeated-labels":
        args += ["--task", str(_task_file(tmp_path / "mine", labels=["Other", "other", "Military: Positive"],
                                          hypotheses={}, answers={}, descriptions={}))]
    elif case == "missing-file":
        args += ["--task", str(_task_file(tmp_path / "mine", ci_files={"train": "missing.csv", "test": "test.csv"}))]
    elif case == "unknown-task":
        args += ["--task", "no-such-task"]
    else:
        args += ["--model", "./no-such-model"]
    assert train_classifier.main(args) == 2  # in ci mode (in_process), every case fails before a model is loaded
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "Traceback" not in error
    assert __import__("re").search(message, error), error


# ---------------------------------------------------------------- the label checks, whatever the data's source (issue 25)


def _military_rows(keep) -> str:
    """The military ci slice's train file, only the rows for which keep(label_text) holds."""
    lines = (ROOT / "data" / "manifesto_military" / "train.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    return lines[0] + "".join(line for line in lines[1:] if keep(line.split(",")[1]))


def test_a_train_csv_without_a_label_is_refused_as_the_course_split_is(tmp_path, in_process, capsys):
    (tmp_path / "mine.csv").write_text(_military_rows(lambda label: label != "Other"), encoding="utf-8")
    assert in_process(["--output-dir", str(tmp_path / "model"), "--train-csv", str(tmp_path / "mine.csv"), *TINY]) == 2
    error = capsys.readouterr().err
    assert "no example in its training file" in error and "['Other']" in error
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.checkpoints").exists()


def test_a_label_with_a_single_example_is_kept_for_training_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    negative = [True]

    def keep(label: str) -> bool:  # every row, but only the first "Military: Negative" one
        if label != "Military: Negative":
            return True
        first, negative[0] = negative[0], False
        return first

    (tmp_path / "mine.csv").write_text(_military_rows(keep), encoding="utf-8")
    s = train_classifier.default_settings()
    task = corpus_models.task_labels().task
    for seed in range(8):  # without the rule, the one example lands in validation for about 1 seed in 5
        s.values.update(N_VALID=10, SEED=seed)
        with pytest.warns(UserWarning, match=r"\['Military: Negative'\] ha(s|ve) only one example in .*mine\.csv: "
                                             r"it is kept for training"):
            splits = train_classifier.load_splits(_args(train_csv=str(tmp_path / "mine.csv")), s, task)
        assert (splits["train"]["label_text"] == "Military: Negative").sum() == 1
        assert "Military: Negative" not in set(splits["valid"]["label_text"])
        assert len(splits["valid"]) == 10
