"""Notebook 3's training recipe as a command: fine-tune an encoder, on one process or many.

    python -m utils.train_classifier --output-dir results/my_model                  # the course split
    python -m utils.train_classifier --train-csv mine_train.csv --test-csv mine_test.csv --output-dir ...
    accelerate launch --num_processes 4 -m utils.train_classifier --output-dir ...  # 4 GPUs (DDP)
    torchrun --nproc_per_node 2 -m utils.train_classifier --output-dir ...          # 2 CPU processes (gloo)

The recipe is notebook 3's `fine_tune`: AutoModelForSequenceClassification loaded in float32, the
same TrainingArguments (warm-up, weight decay, an evaluation each epoch that keeps the epoch with
the best F1 macro), utils.precision_args() for mixed precision, utils.compute_metrics and
DataCollatorWithPadding. The defaults are notebook 3's settings for the run mode (gpu, cpu, ci)
and, like them, can be set by COURSE_<NAME> variables; the options below override both.

Under several processes the Trainer runs distributed data parallel by itself: each process trains
on its share of every batch and the gradients are averaged. Only process 0 writes the model.
The model and tokenizer are saved with save_pretrained to --output-dir (atomically: a folder
appears complete or not at all), ready for `python -m utils.label_corpus --model <output-dir>`.
A killed run resumes from its last epoch checkpoint when started again with the same command; a run of
another task, data, model or recipe into the same --output-dir is refused (the message says what differs).
With the same --seed, two runs give the same weights, and so does a killed run once resumed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import shutil
import sys
from typing import Sequence

import pandas as pd

# The key of a run (model, task, data, recipe) is shared with the notebooks' trainings: utils/resume.py.
from .resume import data_sha256 as _data_sha256  # noqa: F401 (kept under its old name)
from .resume import differences as _differences
from .resume import last_checkpoint, run_identity, write_atomically

CHECKPOINT_JOB = "train_job.json"


class TrainError(ValueError):
    """Arguments or files the training command cannot use; the message says how to fix it."""


def default_settings():
    """Notebook 3's settings for the current run mode (COURSE_<NAME> variables apply)."""
    from .modes import by_mode, settings

    return settings(
        "train_classifier",
        MODEL=by_mode(gpu="microsoft/deberta-v3-base", cpu="microsoft/deberta-v3-xsmall"),
        N_TRAIN=by_mode(gpu=1000, cpu=300, ci=40),
        N_VALID=by_mode(gpu=300, cpu=100, ci=10),
        N_TEST=by_mode(gpu=2000, cpu=500, ci=30),
        EPOCHS=by_mode(gpu=4, cpu=4, ci=1),
        LEARNING_RATE=by_mode(gpu=3e-5, cpu=5e-5, ci=1e-4),
        BATCH_SIZE=16,
        MAX_LENGTH=256,
        CONTEXT=True,
        SEED=42,
    )


def load_splits(args: argparse.Namespace, s, task) -> dict[str, pd.DataFrame]:
    """train / valid / test tables with `text` and `label`: the course split, or the user's CSV files of `task`.

    Whatever the source, every label of the task has examples in the training split (and in a test
    file, as the course split requires of its files); DataError or TrainError says which lack them.
    """
    from .data import check_every_label_occurs, course_splits, hold_out, prepare_texts, read_course_csv

    if args.train_csv is None:
        splits = course_splits(s.N_TRAIN, s.N_TEST, s.SEED, n_valid=s.N_VALID, context=s.CONTEXT, task=task)
    else:
        train = read_course_csv(args.train_csv, task=task)
        check_every_label_occurs(train, f"training file ({args.train_csv})", task)
        if args.valid_csv is not None:
            valid = read_course_csv(args.valid_csv, task=task)
        else:
            if s.N_VALID >= len(train):
                raise TrainError(f"{args.train_csv} has {len(train)} rows, too few to hold out N_VALID={s.N_VALID} for "
                                 "validation. Pass --valid-csv, or a smaller --n-valid.")
            # Held out: the epoch is chosen on rows never trained on; a label's only example stays in training.
            train, valid = hold_out(train, s.N_VALID, s.SEED, where=args.train_csv)
        splits = {"train": train, "valid": valid}
        if args.test_csv is not None:
            splits["test"] = read_course_csv(args.test_csv, task=task)
            check_every_label_occurs(splits["test"], f"test file ({args.test_csv})", task)
        splits = {name: prepare_texts(df, s.CONTEXT).reset_index(drop=True) for name, df in splits.items()}
    # The course split's files have every label, but a small N_TRAIN sample can still miss a rare one.
    missing = [label for label in task.labels if label not in set(splits["train"]["label_text"])]
    if missing:
        raise TrainError(f"The training split ({len(splits['train'])} rows) has no example of {missing}: the model "
                         "would never learn them. Raise --n-train, or add examples of these labels.")
    return splits


def choose_max_length(tokenizer, texts: Sequence[str], upper: int) -> int:
    """Notebook 3's rule: the 99th percentile of the token counts, rounded up to 16, at most `upper`."""
    lengths = pd.Series([len(ids) for ids in tokenizer(list(texts))["input_ids"]])
    return int(min(upper, math.ceil(lengths.quantile(0.99) / 16) * 16))


def _checkpoint_dir(output_dir: pathlib.Path) -> pathlib.Path:
    return output_dir.with_name(output_dir.name + ".checkpoints")


def _resume_point(checkpoints: pathlib.Path, job: dict, overwrite: bool) -> tuple[str | None, list[str]]:
    """The last complete checkpoint of this same run, if a killed run left one, and what differs from another run's.

    Raises TrainError when the folder holds another run's checkpoints (the message names what
    differs), unless `overwrite`: then there is nothing to resume, and the differences are returned
    for the caller to discard those checkpoints. Reads only: in a run of several processes each
    asks, before any of them changes a file. A checkpoint cut short by the kill is skipped: the
    Trainer does not write them atomically.
    """
    job_file = checkpoints / CHECKPOINT_JOB
    try:
        old = json.loads(job_file.read_text(encoding="utf-8")) if job_file.exists() else None
    except (OSError, ValueError):
        old = None
    if not isinstance(old, dict):
        if checkpoints.exists() and any(checkpoints.iterdir()):
            raise TrainError(f"{checkpoints} exists but does not say which run it belongs to ({CHECKPOINT_JOB} is "
                             "missing or unreadable). Move or delete it: training keeps its checkpoints there.")
        return None, []
    differs = _differences(old, job)
    if differs and overwrite:
        return None, differs
    if differs:
        raise TrainError(f"{checkpoints} holds the checkpoints of another training run, stopped before it finished: "
                         f"{'; '.join(differs)}. To resume that run, run its own command again; to keep it and train "
                         "this one, choose another --output-dir; to discard it and start this one, add --overwrite.")
    last = last_checkpoint(checkpoints)
    return (str(last) if last is not None else None), []


def _model_to_load(model: str) -> str:
    """The --model to load: a folder, or a hub id (in ci mode a course id's offline stand-in).

    TrainError for a path that is no folder: left to the loader, it would end in a Hub error about
    the form of repository ids that does not say what is wrong.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from .corpus_models import resolve_model

    resolved = resolve_model(model)
    path = pathlib.Path(resolved).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists():
        raise TrainError(f"--model {model} is a file, not a model folder: pass the folder that save_pretrained wrote "
                         "(it holds config.json), or a Hub id such as microsoft/deberta-v3-base.")
    try:
        validate_repo_id(resolved)
    except HFValidationError:
        raise TrainError(f"--model {model}: no such folder (relative to {pathlib.Path.cwd()}), and not a Hub id either "
                         "(those look like organisation/name). Check the path, or pass a Hub id such as "
                         "microsoft/deberta-v3-base.") from None
    return resolved


def train(args: argparse.Namespace) -> pathlib.Path:
    """Fine-tune as notebook 3 does and save model + tokenizer to args.output_dir (process 0 only)."""
    import torch
    from datasets import Dataset
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)

    from .corpus_models import task_labels
    from .device import check_trainable_dtype, device, precision_args
    from .metrics import classification_metrics, compute_metrics

    s = default_settings()
    overrides = {"N_TRAIN": args.n_train, "N_VALID": args.n_valid, "N_TEST": args.n_test, "EPOCHS": args.epochs,
                 "LEARNING_RATE": args.learning_rate, "BATCH_SIZE": args.batch_size, "MAX_LENGTH": args.max_length,
                 "CONTEXT": args.context, "SEED": args.seed}
    s.values.update({name: value for name, value in overrides.items() if value is not None})
    # Before anything random: the new classification head is drawn from torch's generator when the model is
    # loaded below, and the Trainer seeds only when it is created, after that (notebook 3 seeds first too).
    set_seed(s.SEED)
    if args.model is not None:
        s.values["MODEL"] = _model_to_load(args.model)
    output_dir = pathlib.Path(args.output_dir)
    checkpoints = _checkpoint_dir(output_dir)
    task = task_labels(args.task).task
    id2label = dict(enumerate(task.labels))
    splits = load_splits(args, s, task)
    # What makes a run this run: a checkpoint of another model, task, data or recipe must not be resumed.
    job = run_identity(str(s.MODEL), task, splits, {name.lower(): s.values[name] for name in overrides})
    resume_from, discarded = _resume_point(checkpoints, job, args.overwrite)
    if resume_from is None and output_dir.exists() and any(output_dir.iterdir()) and not args.overwrite:
        raise TrainError(f"{output_dir} exists and is not empty. Choose another --output-dir, or add --overwrite "
                         "to replace what is in it.")

    try:
        tokenizer = AutoTokenizer.from_pretrained(s.MODEL)
    except OSError as error:  # a Hub id that is not there, or no network to fetch it
        raise TrainError(f"--model {s.MODEL}: no such folder here, and loading it from the Hugging Face Hub failed "
                         f"({str(error).splitlines()[0]}). Check the path or the id.") from None
    max_length = choose_max_length(tokenizer, splits["train"]["text"], s.MAX_LENGTH)

    def tokenize(df: pd.DataFrame) -> Dataset:
        dataset = Dataset.from_pandas(df[["text", "label"]], preserve_index=False)
        return dataset.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
                           batched=True, remove_columns=["text"])

    # dtype=float32: trained weights stay in full precision even when the checkpoint is float16.
    model = AutoModelForSequenceClassification.from_pretrained(
        s.MODEL, num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()},
        dtype=torch.float32)
    check_trainable_dtype(model)
    training_args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=s.EPOCHS,
        learning_rate=s.LEARNING_RATE,
        per_device_train_batch_size=s.BATCH_SIZE,
        per_device_eval_batch_size=s.BATCH_SIZE * 4,
        warmup_steps=0.1,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="f1_macro",
        save_total_limit=1,
        # Unlike the notebook, checkpoints keep the optimizer state: a killed run can resume exactly.
        save_only_model=False,
        logging_steps=0.05,
        report_to="none",
        seed=s.SEED,
        disable_tqdm=False,
        dataloader_pin_memory=device() == "cuda",
        # On a machine without a GPU the processes train on the CPU and talk over gloo.
        use_cpu=device() == "cpu",
        **precision_args(),
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=tokenize(splits["train"]),
                      eval_dataset=tokenize(splits["valid"]), processing_class=tokenizer,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics)
    main = trainer.is_world_process_zero()
    if main:
        if discarded:  # --overwrite, onto the checkpoints of another run: only process 0 changes files
            print(f"Discarding the checkpoints of another training run in {checkpoints} (--overwrite): "
                  f"{'; '.join(discarded)}.", flush=True)
            shutil.rmtree(checkpoints)
        checkpoints.mkdir(parents=True, exist_ok=True)
        write_atomically(checkpoints / CHECKPOINT_JOB, json.dumps(job, indent=2))
        print(f"Training {s.MODEL} on {len(splits['train'])} texts ({training_args.world_size} process(es), "
              f"max_length {max_length})" + (f", resuming from {resume_from}" if resume_from else ""), flush=True)
    trainer.train(resume_from_checkpoint=resume_from)

    test_metrics = None
    if "test" in splits:  # every process takes part in predicting; the Trainer gathers the logits
        logits = trainer.predict(tokenize(splits["test"])).predictions
        test_metrics = classification_metrics(splits["test"]["label"], logits.argmax(axis=-1))
    if main:
        # Saved next to the target under a temporary name, then renamed: never half a model folder.
        tmp = output_dir.with_name(f".{output_dir.name}.{os.getpid()}.tmp")
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if test_metrics is not None:
            (tmp / "test_metrics.json").write_text(json.dumps(test_metrics, indent=2), encoding="utf-8")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(tmp, output_dir)
        shutil.rmtree(checkpoints, ignore_errors=True)  # the best model is saved; checkpoints are no longer needed
        print(f"Process {trainer.args.process_index} saved the model and tokenizer to {output_dir}.", flush=True)
        if test_metrics is not None:
            print("Test split: " + ", ".join(f"{k} {v:.3f}" for k, v in test_metrics.items()), flush=True)
    trainer.accelerator.wait_for_everyone()
    return output_dir


def build_parser() -> argparse.ArgumentParser:
    """The command-line arguments of `python -m utils.train_classifier` (defaults: notebook 3's settings)."""
    parser = argparse.ArgumentParser(prog="python -m utils.train_classifier", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--output-dir", required=True, help="folder to save the model and tokenizer to")
    parser.add_argument("--model", help="hub id or folder of the encoder to fine-tune (default: notebook 3's MODEL)")
    parser.add_argument("--task", help="a built-in task's name or a task file (default: COURSE_TASK, else "
                        "manifesto-military); --train-csv etc. are read in its columns and labels")
    parser.add_argument("--train-csv", help="your training data in the course format (default: the course split)")
    parser.add_argument("--valid-csv", help="your validation data (default: N_VALID rows held out of --train-csv)")
    parser.add_argument("--test-csv", help="your test data, scored once at the end")
    parser.add_argument("--n-train", type=int, help="training texts of the course split")
    parser.add_argument("--n-valid", type=int, help="validation texts, to pick the best epoch")
    parser.add_argument("--n-test", type=int, help="test texts of the course split")
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--batch-size", type=int, help="texts per process per step: with N processes a step sees N "
                                                       "times as many, so divide by N to keep notebook 3's recipe")
    parser.add_argument("--max-length", type=int, help="upper limit of tokens per text")
    parser.add_argument("--context", action=argparse.BooleanOptionalAction, default=None,
                        help="the quote with its neighbouring sentences (default, as in the paper) or alone")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--overwrite", action="store_true", help="replace what is in --output-dir, and discard "
                        "the checkpoints of another run that was stopped there")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: train, or print a clear error (exit status 2) on bad arguments or data."""
    from .data import DataError
    from .task import TaskError

    args = build_parser().parse_args(argv)
    args.task = args.task or os.environ.get("COURSE_TASK") or None  # as in the notebooks' settings cell
    try:
        train(args)
    except (TrainError, DataError, TaskError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
