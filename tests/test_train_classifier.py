"""`python -m utils.train_classifier`: notebook 3's recipe trained with two CPU processes (DDP over
gloo), saved once by process 0, loadable for prediction; a killed run resumes; clear refusals."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

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
    with pytest.raises(train_classifier.TrainError, match=r"different training run \(.*epochs.*model"):
        train_classifier.train(_args(output_dir=str(tmp_path / "model")))


def test_a_training_file_too_small_to_hold_out_validation_rows_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MODE", "ci")
    rows = (ROOT / "data" / "manifesto_military" / "train.csv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "mine.csv").write_text("\n".join(rows[:6]) + "\n", encoding="utf-8")
    code = train_classifier.main(["--output-dir", str(tmp_path / "model"), "--train-csv", str(tmp_path / "mine.csv")])
    assert code == 2
    assert "--valid-csv" in capsys.readouterr().err
