"""The model side of `python -m utils.label_corpus`: the task, the three kinds of model, scoring.

- `task_labels()` is the one place that reads task-specific values (labels, NLI hypotheses, the
  LLM's answer words and instruction).
- `detect_kind` tells a LoRA adapter (adapter_config.json), an NLI model (an "entailment" label)
  and a fine-tuned encoder (a sequence-classification head) apart.
- `load_scorer` loads a model on a device and returns a function from texts to probabilities,
  one row per text in input order; inside, texts are batched by length to cut padding.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .corpus_job import CorpusError

KINDS = ("encoder", "nli", "lora")


# ---------------------------------------------------------------- the task


@dataclass(frozen=True)
class TaskLabels:
    """What labelling needs to know about the task."""

    labels: tuple[str, ...]  # label names, in label-id order
    hypotheses: dict[str, str]  # nli: one hypothesis sentence per label
    answers: dict[str, str]  # lora: the word the model answers for each label
    instruction: str  # lora: the instruction in the prompt
    task: object = None  # the utils.task.Task itself (for utils.llm.messages_for)


def task_labels(task: object = None) -> TaskLabels:
    """The task's labels, NLI hypotheses, LLM answer words and instruction.

    `task` is a built-in task's name, a task file's path or a utils.Task; None means COURSE_TASK
    when it is set, else the default task (manifesto-military). The one place that reads
    task-specific values for labelling.
    """
    import os

    from .task import load_task

    t = load_task(task if task is not None else os.environ.get("COURSE_TASK") or None)
    return TaskLabels(tuple(t.labels), dict(t.hypotheses), dict(t.answers), t.instruction, t)


# ---------------------------------------------------------------- models


def resolve_model(model: str) -> str:
    """The model to load: a folder as it is; in ci mode a hub id of the course maps to its offline stand-in."""
    from .modes import MODEL_KINDS, run_mode, stand_in_for

    if not pathlib.Path(model).is_dir() and run_mode() == "ci" and model in MODEL_KINDS:
        return str(stand_in_for(model))
    return model


def detect_kind(model: str) -> str:
    """ "lora", "nli" or "encoder" for a model folder or hub id; CorpusError when it is none of them."""
    from transformers import AutoConfig
    from transformers.utils import find_adapter_config_file

    from .nli import nli_label_ids

    folder = pathlib.Path(model)
    if find_adapter_config_file(model, local_files_only=folder.is_dir()):
        return "lora"
    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as error:
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else None
        raise CorpusError(
            f"{model} is none of the three kinds of model this command applies: it has no adapter_config.json "
            f"(a LoRA adapter, notebook 7) and no readable config.json (an encoder or NLI model, notebooks 3 and 4)"
            + (f"; the folder holds {found}" if found is not None else f" ({error})")
            + ". Pass the folder that save_pretrained wrote, e.g. results/3_tune_bert/model."
        ) from None
    try:
        nli_label_ids(config)
        return "nli"
    except ValueError:
        pass
    architectures = config.architectures or []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return "encoder"
    raise CorpusError(
        f"{model} is none of the three kinds of model this command applies: it is a {architectures or config.model_type} "
        "without a classification head, and neither a LoRA adapter (adapter_config.json) nor an NLI model (an "
        "'entailment' label). Pass a fine-tuned classifier (notebook 3 saves one to results/3_tune_bert/model), an "
        "NLI model, or a LoRA adapter folder (notebook 7)."
    )


@dataclass
class Scorer:
    """A loaded model, ready to label: `score(frame)` gives one row of probabilities per row of `frame`.

    `frame` has the course's columns text_original, text_preceding, text_following.
    """

    kind: str
    labels: list[str]
    score: Callable[[pd.DataFrame], np.ndarray]


def _batches_by_length(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Positions grouped into batches of similar length: sorting cuts the padding each batch needs."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _classifier_probabilities(model, tokenizer, first: list[str], second: list[str] | None, batch_size: int,
                              max_length: int) -> np.ndarray:
    """Softmax of a sequence classifier over texts (or text pairs), batched by length, in input order."""
    import torch

    n = len(first)
    probabilities = np.zeros((n, model.config.num_labels), dtype=np.float64)
    if n == 0:
        return probabilities
    # "only_first": a long premise is cut, never the hypothesis (as notebook 4 tokenises).
    truncation = "only_first" if second is not None else True
    lengths = [len(ids) for ids in tokenizer(first, second, truncation=truncation, max_length=max_length)["input_ids"]]
    device = next(model.parameters()).device
    for batch in _batches_by_length(lengths, batch_size):
        inputs = tokenizer([first[i] for i in batch], [second[i] for i in batch] if second is not None else None,
                           truncation=truncation, max_length=max_length, padding=True, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**inputs.to(device)).logits
        probabilities[batch] = torch.softmax(logits.double(), dim=-1).cpu().numpy()
    return probabilities


def _load_classifier(model: str, device):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .device import inference_dtype

    tokenizer = AutoTokenizer.from_pretrained(model)
    network = AutoModelForSequenceClassification.from_pretrained(model, dtype=inference_dtype()).to(device).eval()
    return network, tokenizer


def load_scorer(model: str, kind: str, device, batch_size: int, max_length: int, context: bool,
                task: TaskLabels) -> Scorer:
    """Load `model` as `kind` on `device` and return its Scorer."""
    from .data import prepare_texts

    def texts(frame: pd.DataFrame) -> list[str]:
        return prepare_texts(frame, context=context)["text"].tolist()

    if kind == "encoder":
        network, tokenizer = _load_classifier(model, device)
        labels = [network.config.id2label[i] for i in range(network.config.num_labels)]

        def score_encoder(frame: pd.DataFrame) -> np.ndarray:
            if frame.empty:
                return np.zeros((0, len(labels)))
            return _classifier_probabilities(network, tokenizer, texts(frame), None, batch_size, max_length)

        return Scorer(kind, labels, score_encoder)

    if kind == "nli":
        from .nli import make_nli_pairs, nli_label_ids, nli_scores

        network, tokenizer = _load_classifier(model, device)
        try:
            entailment, not_entailment = nli_label_ids(network.config)
        except ValueError as error:
            raise CorpusError(f"--kind nli, but {model} is not an NLI model: {error}") from None
        hypotheses = {label: task.hypotheses[label] for label in task.labels}

        def score_nli(frame: pd.DataFrame) -> np.ndarray:
            if frame.empty:
                return np.zeros((0, len(hypotheses)))
            pairs = make_nli_pairs(pd.DataFrame({"text": texts(frame)}), hypotheses, entailment, not_entailment)
            probs = _classifier_probabilities(network, tokenizer, pairs["premise"].tolist(),
                                              pairs["hypothesis"].tolist(), batch_size, max_length)
            # Pairs are matched back to texts by text_id and hypothesis label, never by position.
            label2id = {label: i for i, label in enumerate(task.labels)}
            return nli_scores(pairs, probs[:, entailment], label2id).to_numpy()

        return Scorer(kind, list(task.labels), score_nli)

    if kind == "lora":
        from peft import PeftConfig, PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .device import inference_dtype
        from .llm import label_log_likelihoods, messages_for

        try:
            adapter = PeftConfig.from_pretrained(model)
        except ValueError:
            raise CorpusError(f"--kind lora, but {model} has no adapter_config.json: pass the folder notebook 7 "
                              "saved the adapter to (results/7_tune_generative_llm/adapter).") from None
        if str(adapter.task_type) not in {"CAUSAL_LM", "TaskType.CAUSAL_LM"}:
            raise CorpusError(f"{model} is a LoRA adapter for {adapter.task_type}, not for a generative LLM "
                              "(CAUSAL_LM, as notebook 7 trains): this command cannot score it.")
        base = resolve_model(adapter.base_model_name_or_path)
        # Notebook 7 saves the adapter alone; its tokenizer is the base model's.
        has_tokenizer = pathlib.Path(model, "tokenizer_config.json").exists()
        tokenizer = AutoTokenizer.from_pretrained(model if has_tokenizer else base)
        network = AutoModelForCausalLM.from_pretrained(base, dtype=inference_dtype())
        # Merged into the base weights, the adapter costs nothing per token.
        network = PeftModel.from_pretrained(network, model).merge_and_unload().to(device).eval()
        answers = [task.answers[label] for label in task.labels]

        def score_lora(frame: pd.DataFrame) -> np.ndarray:
            if frame.empty:
                return np.zeros((0, len(answers)))
            messages = messages_for(frame, context=context, instruction=task.instruction, task=task.task)
            # Sorted by length (characters: a close stand-in for tokens, and free) to cut padding.
            order = np.argsort([len(m[-1]["content"]) for m in messages], kind="stable")
            scores = label_log_likelihoods(network, tokenizer, [messages[i] for i in order], answers,
                                           batch_size=batch_size, progress=False)
            log_likelihoods = np.empty_like(scores)
            log_likelihoods[order] = scores
            shifted = np.exp(log_likelihoods - log_likelihoods.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)

        return Scorer(kind, list(task.labels), score_lora)

    raise CorpusError(f"Unknown --kind {kind!r}: use one of {', '.join(KINDS)} (or auto).")
