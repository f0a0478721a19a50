"""Trainings that survive a lost runtime: checkpoints kept where the next runtime finds them.

A free Colab runtime disconnects after idle time or at its usage limit, and the student comes back to
a new machine. So every training in the course (notebooks 3, 4 and 7, and `python -m
utils.train_classifier`) keeps its last checkpoint in the results folder, which is on Google Drive on
Colab (`RESULTS_ON_DRIVE`, asked once), and on a rerun of the same cell with the same settings:

- resumes from that checkpoint (the Trainer's `resume_from_checkpoint`: weights, optimizer state,
  learning-rate schedule and random state, so the result is the one an uninterrupted run gives), or
- when the training had finished, loads the finished model instead of training again.

What counts as "the same" is `run_identity`: the model, the task (its labels, in id order), a hash of
the training and validation data, and the recipe (the TrainingArguments and what else shapes the run).
A run of other settings never resumes another run's checkpoint: the notebooks discard it and start
over (saying what changed); the training command refuses (see utils/train_classifier.py).

Drive space: one checkpoint per training, removed when it ends (the Trainer keeps a second one only
while the best checkpoint is not the latest). A checkpoint holds the trained weights and AdamW's two
moments, all float32: 12 bytes per trained parameter (`checkpoint_bytes`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib
import shutil
import time
from typing import Any, Mapping

import pandas as pd

RUN_FILE = "run.json"  # the identity of the run whose checkpoints or finished model lie next to it
# TrainingArguments that change where or how a run reports, not what it learns.
NOT_RECIPE = ("output_dir", "logging_dir", "run_name", "report_to", "disable_tqdm", "dataloader_pin_memory",
              "push_to_hub", "hub_", "_token", "save_total_limit", "save_only_model", "overwrite_output_dir")


def data_sha256(splits: Mapping[str, pd.DataFrame]) -> str:
    """A hash of what training reads: every training and validation text with its label id, in order.

    The texts as the model gets them (with or without context), so an edited file, another file, another
    sample of the course split or other label ids all give another hash, and a file touched but not
    changed gives the same one.
    """
    content = {name: splits[name][["text", "label"]].astype({"label": int}).values.tolist()
               for name in ("train", "valid") if name in splits}
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    """For json: a set as a sorted list (its order differs from one process to the next), anything else as text."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def run_identity(model: str, task, splits: Mapping[str, pd.DataFrame], recipe: Mapping[str, Any]) -> dict:
    """What makes a training run this run: the model, the task (its labels, in id order), the data and the recipe.

    Written next to the checkpoints; a checkpoint is resumed only by a run with the same identity.
    The one key of every training in the course: the notebooks and the training command both use it.
    """
    from .corpus_job import model_fingerprint

    return {**model_fingerprint(str(model)), "task": task.name, "labels": list(task.labels),
            "data_sha256": data_sha256(splits), **json.loads(json.dumps(dict(recipe), default=_plain))}


def differences(old: Mapping, new: Mapping) -> list[str]:
    """What differs between two run identities, one short phrase each."""
    phrases = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key == "data_sha256":
            phrases.append("the training and validation data differ (other texts, rows or label ids)")
        elif key == "model_files":
            phrases.append("the model folder's files changed")
        elif len(repr(old.get(key))) + len(repr(new.get(key))) <= 160:
            phrases.append(f"{key} {old.get(key)!r} then, {new.get(key)!r} now")
        else:
            phrases.append(f"{key} differs")
    return phrases


def complete_checkpoint(folder: pathlib.Path) -> bool:
    """Whether a Trainer checkpoint was written to the end: the Trainer writes trainer_state.json last."""
    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def last_checkpoint(checkpoints: pathlib.Path) -> pathlib.Path | None:
    """The complete checkpoint with the highest step in `checkpoints`; None when there is none.

    A checkpoint cut short by a kill is skipped: the Trainer does not write them atomically.
    """
    complete = [p for p in checkpoints.glob("checkpoint-*")
                if p.name.removeprefix("checkpoint-").isdigit() and complete_checkpoint(p)]
    return max(complete, key=lambda p: int(p.name.removeprefix("checkpoint-")), default=None)


def write_atomically(path: pathlib.Path, text: str) -> None:
    """Write `text` to `path` so that a kill leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: pathlib.Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def recipe_of(args) -> dict:
    """The recipe part of a run's identity, read from its TrainingArguments: every setting that shapes
    what the model learns (learning rate, epochs, batch size, seed, precision, ...), without the ones
    that only say where to write or how to report (output_dir, report_to, save_total_limit, ...)."""
    return {key: value for key, value in sorted(args.to_dict().items())
            if not any(part in key for part in NOT_RECIPE)}


def checkpoint_bytes(trained_parameters: int) -> int:
    """Bytes of one resumable checkpoint: float32 weights plus AdamW's two float32 moments per parameter.

    12 bytes per trained parameter; the scheduler, the random state and the trainer state add a few kB.
    """
    return 12 * int(trained_parameters)


def training_seconds(trainer) -> float:
    """The seconds of training behind `trainer`'s model, all attempts together (a resumed run counts the
    time before the disconnect too; a loaded finished model, the time it took when it was trained)."""
    seconds = getattr(trainer, "course_training_seconds", None)
    if seconds is None:
        raise ValueError("This trainer did not train through TrainingRun.train, so its training time is unknown: "
                         "call `run.train(trainer, ...)` instead of `trainer.train()`.")
    return float(seconds)


def deberta_v3_base_parameters(num_labels: int) -> int:
    """Parameters of microsoft/deberta-v3-base with a classification head, counted from its config's sizes.

    vocab 128100, hidden 768, 12 layers, intermediate 3072, 256 relative-position buckets (2 x 256
    relative embeddings); each layer: query, key, value and output (768 x 768 + bias), two LayerNorms,
    the feed-forward pair (768 x 3072 and back, with biases); then the pooler (768 x 768) and the classifier.
    """
    hidden, inner, layers, vocab, buckets = 768, 3072, 12, 128100, 256
    layer = 4 * (hidden * hidden + hidden) + (hidden * inner + inner) + (inner * hidden + hidden) + 2 * 2 * hidden
    embeddings = vocab * hidden + 2 * hidden                      # word embeddings + their LayerNorm
    relative = 2 * buckets * hidden + 2 * hidden                   # relative-position embeddings + their LayerNorm
    head = (hidden * hidden + hidden) + (hidden * num_labels + num_labels)  # pooler + classifier
    return embeddings + layers * layer + relative + head


def drive_space(notebook: str, num_labels: int = 2) -> pd.DataFrame:
    """What one resumable training of `notebook` keeps on Drive with its gpu-mode model, from parameter counts.

    Checkpoint: 12 bytes per trained parameter (float32 weights + AdamW's two float32 moments; for LoRA
    only the adapter trains and is saved). Finished model: 4 bytes per trained parameter (float32).
    """
    from .lora_size import LORA_R, LORA_TARGETS, SMOLLM2_1_7B, lora_parameters

    if notebook in ("3_tune_bert", "4_tune_bert_nli"):
        model = ("microsoft/deberta-v3-base, all weights trained" if notebook == "3_tune_bert" else
                 "MoritzLaurer/deberta-v3-base-zeroshot-v2.0, all weights trained")
        trained = deberta_v3_base_parameters(num_labels if notebook == "3_tune_bert" else 2)
    elif notebook == "7_tune_generative_llm":
        model = f"HuggingFaceTB/SmolLM2-1.7B-Instruct, LoRA r={LORA_R} on {len(LORA_TARGETS)} projections"
        trained = lora_parameters(SMOLLM2_1_7B, LORA_R, LORA_TARGETS)
    else:
        raise ValueError(f"{notebook} trains nothing: only notebooks 3, 4 and 7 keep checkpoints.")
    return pd.DataFrame({"": {
        "model (gpu mode)": model,
        "trained parameters (millions)": round(trained / 1e6, 1),
        "one checkpoint (GB): weights + 2 AdamW moments, float32": round(checkpoint_bytes(trained) / 1e9, 2),
        "finished model kept for a rerun (GB)": round(4 * trained / 1e9, 3),
    }})


class TrainingRun:
    """One training of a notebook, kept resumable: where its checkpoints go, and how to train it.

    `TrainingRun("3_tune_bert", "main").checkpoints` is the folder to give TrainingArguments as
    `output_dir`; `run.train(trainer, ...)` then trains, resumes or loads, and prints which.
    The folders, under the results folder (on Drive on Colab when RESULTS_ON_DRIVE is on):
    training/<notebook>/<name>/checkpoints, .../model (the finished model, when kept) and .../run.json.
    """

    def __init__(self, notebook: str, name: str = "main") -> None:
        from .metrics import results_dir

        self.notebook, self.name = notebook, name
        self.folder = results_dir() / "training" / notebook / name
        self.checkpoints = self.folder / "checkpoints"
        self.model_dir = self.folder / "model"
        self.message = ""

    def _discard(self) -> None:
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        shutil.rmtree(self.model_dir, ignore_errors=True)
        (self.folder / RUN_FILE).unlink(missing_ok=True)

    def train(self, trainer, *, model: str, task, data: Mapping[str, pd.DataFrame], keep_model: bool = True,
              **recipe: Any) -> str:
        """Train `trainer`, resume it from this run's last checkpoint, or load this run's finished model.

        `model` (hub id or folder), `task` and `data` (the train and valid tables with `text` and `label`)
        and the TrainingArguments, plus any `recipe` keywords (e.g. max_length), make the run's identity.
        With `keep_model`, the finished model (for LoRA: the adapter only) is saved for the next rerun
        to load; without, only the checkpoints are kept while training runs. The checkpoints are removed
        once training ends. Returns, and prints, what it did. Afterwards `training_seconds(trainer)`
        gives the training time of all attempts.
        """
        from transformers import TrainerCallback, TrainerState

        identity = run_identity(model, task, data, {**recipe_of(trainer.args), **recipe})
        if hasattr(trainer.model, "peft_config"):  # LoRA: its rank, targets and scale shape the run too
            identity["peft"] = json.loads(json.dumps(
                {k: v.to_dict() for k, v in trainer.model.peft_config.items()}, default=_plain))
        if pathlib.Path(trainer.args.output_dir).resolve() != self.checkpoints.resolve():
            raise ValueError(f"TrainingArguments(output_dir={trainer.args.output_dir!r}) is not this run's "
                             f"checkpoint folder: pass output_dir=str(run.checkpoints) ({self.checkpoints}).")
        self.folder.mkdir(parents=True, exist_ok=True)
        old = _read_json(self.folder / RUN_FILE)
        changed = differences(old.get("identity", {}), identity) if old else []
        notes = []
        # (The Trainer makes output_dir when it is created: an empty folder is no earlier run.)
        if old is None and (any(self.checkpoints.glob("checkpoint-*")) or self.model_dir.exists()):
            changed = ["no record of its settings"]
        if changed:  # never resume (or load) a run of other settings: start this one over
            notes.append(f"discarded an earlier run of {self.notebook}/{self.name} with other settings "
                         f"({'; '.join(changed)})")
            self._discard()
            old = None

        finished = old.get("finished") if old else None
        if finished and self.model_dir.is_dir():
            trainer._load_from_checkpoint(str(self.model_dir))  # the Trainer's own loader: full models and adapters
            trainer.state = TrainerState.load_from_json(str(self.model_dir / "trainer_state.json"))
            trainer.course_training_seconds = old.get("seconds", 0.0)
            when = dt.datetime.fromisoformat(finished)
            day = "" if when.date() == dt.date.today() else when.strftime(" on %Y-%m-%d")
            self.message = f"found the finished model from {when:%H:%M}{day}, loaded it (no training needed)"
            return self._say(notes)

        resume_from = last_checkpoint(self.checkpoints) if old else None
        before, resumed_step = 0.0, None
        if resume_from is not None:
            state = _read_json(resume_from / "trainer_state.json") or {}
            resumed_step = state.get("global_step")
            before = float((old.get("seconds_at") or {}).get(resume_from.name, 0.0))
            print(f"{self.notebook}/{self.name}: resuming from step {resumed_step} of "
                  f"{state.get('max_steps')} ({resume_from})", flush=True)
        write_atomically(self.folder / RUN_FILE, json.dumps({"identity": identity, "seconds_at": (old or {}).get(
            "seconds_at", {})}, indent=2))
        start = time.perf_counter()
        run = self

        class RecordTime(TrainerCallback):
            """Before each checkpoint, note the training seconds so far: a resumed run adds them to its own.

            At the end of the step that saves (the Trainer's flow callback has just set should_save), not
            after the save: a runtime lost right after a checkpoint must find its time noted already.
            """

            def on_step_end(self, args, state, control, **kwargs):
                self._note(state, control)

            def on_epoch_end(self, args, state, control, **kwargs):  # save_strategy="epoch" decides here
                self._note(state, control)

            def _note(self, state, control):
                if not control.should_save:
                    return
                record = _read_json(run.folder / RUN_FILE) or {"identity": identity}
                record.setdefault("seconds_at", {})[f"checkpoint-{state.global_step}"] = (
                    before + time.perf_counter() - start)
                write_atomically(run.folder / RUN_FILE, json.dumps(record, indent=2))

        trainer.add_callback(RecordTime())
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        seconds = before + time.perf_counter() - start
        trainer.course_training_seconds = seconds
        if resume_from is not None:
            self.message = (f"resumed from step {resumed_step} of {trainer.state.max_steps} and trained "
                            f"to the end ({before:.0f} s before the interruption, {seconds - before:.0f} s now)")
        else:
            self.message = f"trained from the start: {trainer.state.max_steps} steps in {seconds:.0f} s"
        record: dict[str, Any] = {"identity": identity}
        if keep_model:  # saved under a temporary name, then renamed: never half a model folder
            tmp = self.folder / f".model.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            trainer.save_model(str(tmp))  # a LoRA model saves its adapter only
            trainer.state.save_to_json(str(tmp / "trainer_state.json"))
            shutil.rmtree(self.model_dir, ignore_errors=True)
            os.replace(tmp, self.model_dir)
            record.update(finished=dt.datetime.now().isoformat(timespec="seconds"), seconds=seconds)
            self.message += f"; the finished model is kept in {self.model_dir} for a rerun"
        shutil.rmtree(self.checkpoints, ignore_errors=True)  # finished: the checkpoints are no longer needed
        write_atomically(self.folder / RUN_FILE, json.dumps(record, indent=2))
        return self._say(notes)

    def _say(self, notes: list[str]) -> str:
        self.message = "; ".join([*notes, self.message])
        text = f"{self.notebook}/{self.name}: {self.message}."
        print(text, flush=True)
        return text
