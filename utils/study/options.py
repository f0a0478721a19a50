"""The study's options: one dataclass, parsed as transformers' run_glue.py parses its own.

`python -m utils.study --help` lists them. Options left out take the run mode's default (gpu: the
course's real models; cpu: the small ones; ci: the offline stand-ins and a small grid), chosen
here with utils.settings(), so COURSE_<NAME> variables set them too, as in the notebooks.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Sequence

APPROACH_KEYS = ("tfidf", "embeddings", "encoder", "nli-zero-shot", "nli")
FINE_TUNED = ("encoder", "nli")  # the approaches whose sizes --max-size-finetune caps
# Our assumption, not a measurement: a sentence read with its context and labelled in 20 seconds.
DEFAULT_SECONDS_PER_LABEL = 20.0


class StudyError(ValueError):
    """Options or data the study cannot use; the message names the problem and the fix."""


def _help(text: str, **extra: object) -> dict:
    return {"metadata": {"help": text}, **extra}


@dataclass
class StudyArguments:
    """Every option of `python -m utils.study` (`make study`). None: the run mode's default."""

    task: str | None = field(default=None, **_help(
        "a built-in task's name or your task file (default: COURSE_TASK, else manifesto-military)"))
    output_dir: str | None = field(default=None, **_help("the study folder (default: results/study-<task>/)"))
    approaches: list[str] = field(default_factory=lambda: list(APPROACH_KEYS), **_help(
        f"which approaches to compare, of {', '.join(APPROACH_KEYS)} (the NLI ones need label descriptions)"))
    sizes: list[int] | None = field(default=None, **_help(
        "training sizes to measure (default: doubling from --min-size up to what the train file allows)"))
    min_size: int | None = field(default=None, **_help("the smallest training size (gpu/cpu: 100, ci: 12)"))
    max_size: int | None = field(default=None, **_help("the largest training size (default: the train file's rows)"))
    max_size_finetune: int | None = field(default=None, **_help(
        "the largest size for the fine-tuned encoder and NLI, the slow ones (gpu: no cap, cpu: 1000, ci: 24)"))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], **_help(
        "one training sample per seed and size (at least 3, as in the paper)"))
    n_test: int | None = field(default=None, **_help(
        "rows of the test file to score on, a fixed stratified sample (gpu: all, cpu: 1000, ci: 100)"))
    target: float | None = field(default=None, **_help(
        "the F1 macro to reach (default: the best approach's score at its largest size + 0.05)"))
    seconds_per_label: float = field(default=DEFAULT_SECONDS_PER_LABEL, **_help(
        f"annotation time per sentence, for the cost table (default {DEFAULT_SECONDS_PER_LABEL:g} s: an assumption; "
        "time yourself in notebook 6)"))
    embedding_model: str | None = field(default=None, **_help("sentence-embedding model (notebook 5's)"))
    model: str | None = field(default=None, **_help("encoder to fine-tune (notebook 3's)"))
    nli_model: str | None = field(default=None, **_help("NLI model, zero-shot and fine-tuned (notebook 4's)"))
    epochs: int | None = field(default=None, **_help("epochs of the fine-tuned approaches (at least; see --min-steps)"))
    min_steps: int | None = field(default=None, **_help(
        "at least this many optimiser steps: small sizes get more epochs"))
    learning_rate: float | None = field(default=None, **_help("learning rate of the fine-tuned encoder"))
    nli_learning_rate: float | None = field(default=None, **_help("learning rate of the fine-tuned NLI model"))
    batch_size: int | None = field(default=None, **_help("texts (or NLI pairs) per optimiser step"))
    max_length: int | None = field(default=None, **_help("upper limit of tokens per text"))
    context: bool = field(default=True, **_help("the quote with its neighbouring sentences (the paper's way)"))
    group_column: str | None = field(default=None, **_help("the column of the groups to check validity on "
                                                           "(default: the task's group_column)"))
    min_group_rows: int = field(default=30, **_help("a group with fewer test rows gets a warning"))
    n_resamples: int = field(default=1000, **_help("bootstrap draws of the test rows, for the intervals"))
    seed: int = field(default=42, **_help("seed of the test sample, the bootstraps and the curve fits"))
    dry_run: bool = field(default=False, **_help("print the grid and the estimated time, run nothing"))
    replicate: str | None = field(default=None, **_help(
        "a study folder: run its replication bundle again and check the tables come out the same"))


# What the run mode decides, as the notebooks' settings cells do (COURSE_<NAME> overrides).
def mode_settings():
    """The mode's defaults for the options left out (a utils.modes.Settings)."""
    from ..modes import by_mode, settings

    return settings(
        "study",
        EMBEDDING_MODEL=by_mode(gpu="BAAI/bge-small-en-v1.5", cpu="sentence-transformers/all-MiniLM-L6-v2"),
        MODEL=by_mode(gpu="microsoft/deberta-v3-base", cpu="microsoft/deberta-v3-xsmall"),
        NLI_MODEL=by_mode(gpu="MoritzLaurer/deberta-v3-base-zeroshot-v2.0",
                          cpu="MoritzLaurer/xtremedistil-l6-h256-zeroshot-v1.1-all-33"),
        MIN_SIZE=by_mode(gpu=100, cpu=100, ci=12),
        MAX_SIZE_FINETUNE=by_mode(gpu=0, cpu=1000, ci=24),  # 0: no cap; ci: enough to check the code runs
        N_TEST=by_mode(gpu=0, cpu=1000, ci=100),  # 0: every row of the test file
        EPOCHS=by_mode(gpu=4, cpu=4, ci=1),
        MIN_STEPS=by_mode(gpu=250, cpu=75, ci=3),
        LEARNING_RATE=by_mode(gpu=3e-5, cpu=5e-5, ci=1e-4),
        NLI_LEARNING_RATE=by_mode(gpu=2e-5, cpu=5e-5, ci=1e-4),
        BATCH_SIZE=16,
        MAX_LENGTH=by_mode(gpu=256, ci=64),
    )


_FROM_MODE = {"embedding_model": "EMBEDDING_MODEL", "model": "MODEL", "nli_model": "NLI_MODEL", "min_size": "MIN_SIZE",
              "max_size_finetune": "MAX_SIZE_FINETUNE", "n_test": "N_TEST", "epochs": "EPOCHS",
              "min_steps": "MIN_STEPS", "learning_rate": "LEARNING_RATE", "nli_learning_rate": "NLI_LEARNING_RATE",
              "batch_size": "BATCH_SIZE", "max_length": "MAX_LENGTH"}
_MODEL_OPTIONS = ("embedding_model", "model", "nli_model")


@dataclass
class Resolved:
    """The options with every default filled in, the run mode, and each model's hub id and local path."""

    args: StudyArguments
    mode: str
    model_ids: dict[str, str]     # option -> hub id (or folder) as the user knows it
    model_paths: dict[str, str]   # option -> what is loaded (in ci mode: the stand-in's folder)
    defaulted: frozenset[str] = frozenset()  # the options the mode chose, not the user

    def __getattr__(self, name: str) -> object:
        return getattr(self.__dict__["args"], name)


def resolve(args: StudyArguments) -> Resolved:
    """Fill in the mode's defaults and check the options; StudyError names a wrong one and its fix."""
    from ..modes import run_mode, stand_in_for

    s = mode_settings()
    values = dataclasses.replace(args)
    values.task = args.task or os.environ.get("COURSE_TASK") or "manifesto-military"
    ids, paths = {}, {}
    defaulted = frozenset(option for option in _FROM_MODE if getattr(values, option) is None)
    for option, setting in _FROM_MODE.items():
        if getattr(values, option) is None:
            setattr(values, option, s.hub_id(setting) if option in _MODEL_OPTIONS else s.values[setting])
    mode = run_mode()
    for option in _MODEL_OPTIONS:
        ids[option] = getattr(values, option)
        try:
            paths[option] = str(stand_in_for(ids[option])) if mode == "ci" else ids[option]
        except KeyError as error:
            raise StudyError(f"--{option.replace('_', '-')} {ids[option]}: {error.args[0]}") from None
    unknown = [a for a in values.approaches if a not in APPROACH_KEYS]
    if unknown or not values.approaches:
        raise StudyError(f"--approaches: {unknown or 'none given'} are not approaches of the study. Choose from "
                         f"{', '.join(APPROACH_KEYS)}, e.g. --approaches tfidf embeddings.")
    values.approaches = [a for a in APPROACH_KEYS if a in values.approaches]  # one order everywhere
    if len(set(values.seeds)) < 3:
        raise StudyError(f"--seeds {values.seeds}: give at least 3 different seeds (each a different training "
                         "sample), so that the curves show how much the sample alone moves the score.")
    if values.target is not None and not 0 < values.target <= 1:
        raise StudyError(f"--target {values.target}: an F1 macro lies between 0 and 1, e.g. --target 0.7.")
    if values.seconds_per_label <= 0:
        raise StudyError(f"--seconds-per-label {values.seconds_per_label}: give the seconds one label takes, e.g. 20.")
    for option in ("min_size", "batch_size", "epochs", "n_resamples", "min_group_rows"):
        if getattr(values, option) is not None and getattr(values, option) < 1:
            raise StudyError(f"--{option.replace('_', '-')} {getattr(values, option)}: use a whole number of 1 or "
                             "more.")
    if values.sizes is not None and (not values.sizes or min(values.sizes) < 1):
        raise StudyError(f"--sizes {values.sizes}: give positive training sizes, e.g. --sizes 100 200 400.")
    return Resolved(values, mode, ids, paths, defaulted)


def parse(argv: Sequence[str] | None = None) -> StudyArguments:
    """The command line as StudyArguments, parsed by transformers' HfArgumentParser."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(StudyArguments, prog="python -m utils.study",
                              description="Your own study: learning curves, labels needed, cost, validity, a report.")
    (args,) = parser.parse_args_into_dataclasses(args=list(argv) if argv is not None else None)
    return args


def as_argv(args: StudyArguments) -> list[str]:
    """The options that differ from their defaults, as a command line (for the replication bundle)."""
    argv = []
    defaults = StudyArguments()
    for f in dataclasses.fields(StudyArguments):
        value = getattr(args, f.name)
        if f.name in ("replicate", "dry_run") or value == getattr(defaults, f.name):
            continue
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(value, bool):
            argv += [flag, str(value).lower()]
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv
