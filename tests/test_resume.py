"""utils/resume.py: a notebook's training killed after its first checkpoint resumes there and ends with the weights
of an uninterrupted run; a finished run is loaded, not trained again; other settings never resume it. On a tiny
encoder in this process (quick tier); tests/test_notebook_resume.py kills real notebook kernels (full tier)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import transformers
from datasets import Dataset
from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                          DataCollatorWithPadding, Trainer, TrainingArguments)

import utils
from utils import resume


class _Killed(Exception):
    """Stands for the kernel dying right after a checkpoint was written."""


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


TASK = utils.load_task("manifesto-military")
DATA = {name: pd.DataFrame({"text": [f"{name} sentence number {i} about the army" for i in range(n)],
                            "label": [i % len(TASK.labels) for i in range(n)]})
        for name, n in (("train", 16), ("valid", 8))}


def make_trainer(model_dir: str, run: resume.TrainingRun, learning_rate: float = 1e-3) -> Trainer:
    """Notebook 3's recipe, shrunk: 16 texts in batches of 8 for 2 epochs = 4 steps, a checkpoint each epoch."""
    transformers.set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(TASK.labels))
    data = {name: Dataset.from_pandas(df).map(lambda b: tokenizer(b["text"], truncation=True, max_length=32),
                                              batched=True, remove_columns=["text"]) for name, df in DATA.items()}
    args = TrainingArguments(output_dir=str(run.checkpoints), num_train_epochs=2, learning_rate=learning_rate,
                             per_device_train_batch_size=8, eval_strategy="epoch", save_strategy="epoch",
                             load_best_model_at_end=True, save_total_limit=1, save_only_model=False,
                             report_to="none", seed=0, use_cpu=True, disable_tqdm=True)
    return Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["valid"],
                   processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer))


def train(model_dir: str, name: str, **kwargs) -> tuple[Trainer, str]:
    run = resume.TrainingRun("3_tune_bert", name)
    trainer = make_trainer(model_dir, run, **kwargs)
    message = run.train(trainer, model=model_dir, task=TASK, data=DATA, max_length=32)
    return trainer, message


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def killed_after_the_first_checkpoint(monkeypatch, model_dir: str, name: str) -> None:
    save = Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_save_checkpoint", save_then_die)
        with pytest.raises(_Killed):
            train(model_dir, name)


def test_a_killed_training_resumes_loads_when_finished_and_ends_like_an_uninterrupted_one(
        results, tiny_encoder, monkeypatch, capsys):
    uninterrupted, message = train(tiny_encoder, "uninterrupted")
    assert message.endswith(".") and "trained from the start: 4 steps" in message
    assert "discarded" not in message  # a first run has nothing to discard

    killed_after_the_first_checkpoint(monkeypatch, tiny_encoder, "main")
    run_folder = results / "training" / "3_tune_bert" / "main"
    assert (run_folder / "checkpoints" / "checkpoint-2" / "optimizer.pt").exists()  # resumable: with the optimizer
    assert not (run_folder / "model").exists()

    resumed, message = train(tiny_encoder, "main")
    assert "resumed from step 2 of 4" in message
    assert same_weights(weights(resumed), weights(uninterrupted))  # resuming changes nothing (atol 1e-6)
    assert not (run_folder / "checkpoints").exists()  # removed once training ended
    assert (run_folder / "model" / "model.safetensors").exists()
    seconds = utils.training_seconds(resumed)
    assert seconds > 0

    loaded, message = train(tiny_encoder, "main")
    assert "found the finished model from " in message and "loaded it" in message
    assert same_weights(weights(loaded), weights(uninterrupted))
    assert [e["step"] for e in loaded.state.log_history if "eval_loss" in e] == [2, 4]  # the loss plot's history
    assert utils.training_seconds(loaded) == pytest.approx(seconds)


def test_other_settings_never_resume_another_runs_checkpoint(results, tiny_encoder, monkeypatch):
    killed_after_the_first_checkpoint(monkeypatch, tiny_encoder, "main")
    _, message = train(tiny_encoder, "main", learning_rate=5e-4)
    assert "discarded an earlier run of 3_tune_bert/main with other settings (learning_rate 0.001 then, 0.0005 now)" \
        in message
    assert "trained from the start" in message and "resumed" not in message


def test_other_data_never_loads_another_runs_finished_model(results, tiny_encoder, monkeypatch):
    train(tiny_encoder, "main")
    monkeypatch.setitem(DATA, "train", DATA["train"].assign(label=DATA["train"]["label"][::-1].values))
    _, message = train(tiny_encoder, "main")
    assert "the training and validation data differ" in message and "trained from the start" in message


def test_the_output_dir_must_be_the_runs_checkpoint_folder(results, tiny_encoder):
    run = resume.TrainingRun("3_tune_bert", "main")
    trainer = make_trainer(tiny_encoder, resume.TrainingRun("3_tune_bert", "other"))
    with pytest.raises(ValueError, match="output_dir=str\\(run.checkpoints\\)"):
        run.train(trainer, model=tiny_encoder, task=TASK, data=DATA)


def test_a_checkpoint_takes_12_bytes_per_trained_parameter(results, tiny_encoder, monkeypatch):
    """The Drive figures in notebooks 3, 4 and 7 come from this rule: measured here on a real checkpoint."""
    killed_after_the_first_checkpoint(monkeypatch, tiny_encoder, "main")
    checkpoint = results / "training" / "3_tune_bert" / "main" / "checkpoints" / "checkpoint-2"
    trained = sum(p.numel() for p in make_trainer(tiny_encoder, resume.TrainingRun("3_tune_bert", "x")).model
                  .parameters())
    big = sum(checkpoint.joinpath(f).stat().st_size for f in ("model.safetensors", "optimizer.pt"))
    assert big == pytest.approx(resume.checkpoint_bytes(trained), rel=0.05)


def test_the_drive_figures_for_the_course_models():
    deberta = resume.deberta_v3_base_parameters(num_labels=2)
    assert 184e6 < deberta < 185e6  # the model card's "184M"
    three = resume.drive_space("3_tune_bert").iloc[:, 0]
    assert three["one checkpoint (GB): weights + 2 AdamW moments, float32"] == round(12 * deberta / 1e9, 2) == 2.21
    seven = resume.drive_space("7_tune_generative_llm").iloc[:, 0]
    assert seven["trained parameters (millions)"] == 18.1  # 24 layers x 16 x (4 x 4096 + 3 x 10240)
    assert seven["one checkpoint (GB): weights + 2 AdamW moments, float32"] == 0.22


def test_the_training_command_and_the_notebooks_share_one_run_key():
    from utils import train_classifier

    assert train_classifier.run_identity is resume.run_identity
    identity = resume.run_identity("m", TASK, DATA, {"epochs": 1})
    assert identity["labels"] == list(TASK.labels) and json.loads(json.dumps(identity)) == identity


def test_a_lora_config_gives_the_same_identity_in_every_process():
    """peft keeps target_modules as a set, whose order changes with each process's hash seed: sorted in the key."""
    import subprocess
    import sys

    code = ("import json; from peft import LoraConfig; from utils.resume import _plain; "
            "print(json.dumps(LoraConfig(r=16, target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj'])"
            ".to_dict(), default=_plain, sort_keys=True))")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)}).stdout
               for seed in (1, 2, 3)}
    assert len(outputs) == 1
