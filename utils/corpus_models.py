"""The model side of `python -m utils.label_corpus`: the task, the three kinds of model, scoring.

- `task_labels()` is the one place that reads task-specific values (labels, NLI hypotheses, the
  LLM's answer words and instruction).
- `detect_kind` tells a LoRA adapter (adapter_config.json), an NLI model (an "entailment" label)
  and a fine-tuned encoder (a sequence-classification head) apart.
- `load_scorer` loads a model on a device and returns a function from texts to probabilities,
  one row per text in input order; inside, texts are batched by length to cut padding.
- `choose_backend` picks what runs an encoder or NLI model: fp32 torch, or on a CPU the int8
  ONNX Runtime model of utils.onnx_int8 (about 3 times faster, with the same labels for all but a
  few near-ties).
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .corpus_job import CorpusError

KINDS = ("encoder", "nli", "lora")
BACKENDS = ("torch", "int8")  # fp32 (or the GPU's half precision) torch; int8 ONNX Runtime on a CPU


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

    `frame` has the course's columns text_original, text_preceding, text_following. `backend` is what
    runs the model ("torch" or "int8"); `note` says why auto fell back to torch when it did ("" otherwise).
    """

    kind: str
    labels: list[str]
    score: Callable[[pd.DataFrame], np.ndarray]
    backend: str = "torch"
    note: str = ""
    stats: dict = field(default_factory=dict)  # int8: texts scored, and those scored again in fp32 ("again")


def choose_backend(requested: str, kind: str, device_type: str) -> tuple[str, str]:
    """The backend to try for `requested` ("auto", "torch" or "int8") and, when auto settles for torch on
    a CPU, the one-line reason; cheap (no model is loaded), so the job's identity can hold it from the start.

    auto means int8 for an encoder or NLI model on a CPU, torch otherwise (a GPU runs half precision;
    LoRA LLMs have no int8 path here). Raises CorpusError when int8 is asked for where it cannot run.
    """
    from .onnx_int8 import missing_runtime

    if requested == "torch":
        return "torch", ""
    if kind == "lora" or device_type != "cpu":
        if requested == "int8":
            raise CorpusError("--backend int8 runs encoder and NLI models on a CPU"
                              + (", not a LoRA LLM" if kind == "lora" else f", not on {device_type}")
                              + ": use --backend torch (or auto).")
        return "torch", ""
    reason = missing_runtime()
    if reason is None:
        return "int8", ""
    if requested == "int8":
        raise CorpusError(f"--backend int8 cannot run here: {reason}. Use --backend torch (or auto).")
    return "torch", reason


@dataclass(frozen=True)
class Share:
    """This process's part of the work when several label one chunk (torchrun, accelerate launch).

    Every process sees the whole chunk and cuts it into the same batches; process `index` of
    `count` runs every count-th batch, and `gather(obj)` returns every process's obj, in process
    order. So a text is in the same batch whatever the number of processes: int8 quantises a
    batch's activations with one scale, and its batch-mates move a text's probabilities a little.
    """

    index: int = 0
    count: int = 1
    gather: Callable[[object], list] | None = None

    def mine(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """The batches this process runs."""
        return batches[self.index::self.count]

    def combine(self, n: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The n rows of every process put together, from this process's `rows` (positions) and `values`."""
        parts = [(rows, values)] if self.count == 1 else self.gather((rows, values))
        result = np.zeros((n, values.shape[1]), dtype=np.float64)
        for positions, part in parts:
            result[positions] = part
        return result


def _batches_by_length(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Positions grouped into batches of similar length: sorting cuts the padding each batch needs."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _classifier_probabilities(logits: Callable[[dict], np.ndarray], num_labels: int, tokenizer, first: list[str],
                              second: list[str] | None, batch_size: int, max_length: int,
                              share: Share = Share()) -> np.ndarray:
    """Softmax of a sequence classifier over texts (or text pairs), batched by length, in input order.

    `logits(inputs)` runs the classifier (torch or int8) on one tokenised batch; with several
    processes, `share` says which batches this one runs (all processes get the whole result).
    """
    import torch

    n = len(first)
    if n == 0:
        return np.zeros((0, num_labels), dtype=np.float64)
    # "only_first": a long premise is cut, never the hypothesis (as notebook 4 tokenises).
    truncation = "only_first" if second is not None else True
    lengths = [len(ids) for ids in tokenizer(first, second, truncation=truncation, max_length=max_length)["input_ids"]]
    batches = share.mine(_batches_by_length(lengths, batch_size))
    rows = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    values = np.zeros((len(rows), num_labels), dtype=np.float64)
    done = 0
    for batch in batches:
        inputs = tokenizer([first[i] for i in batch], [second[i] for i in batch] if second is not None else None,
                           truncation=truncation, max_length=max_length, padding=True, return_tensors="pt")
        values[done:done + len(batch)] = torch.softmax(torch.as_tensor(logits(inputs)).double(), dim=-1).numpy()
        done += len(batch)
    return share.combine(n, rows, values)


def _load_classifier(model: str, device):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .device import inference_dtype

    tokenizer = AutoTokenizer.from_pretrained(model)
    network = AutoModelForSequenceClassification.from_pretrained(model, dtype=inference_dtype()).to(device).eval()
    return network, tokenizer


def _int8(model: str, network, tokenizer, threads: int | None, fallback: bool,
          report: Callable[[str], None]) -> tuple[Callable[[dict], np.ndarray] | None, str]:
    """(int8 logits function, "") of a sequence classifier; (None, the reason) when it does not export and
    `fallback` allows torch, else CorpusError."""
    import torch

    from .onnx_int8 import Int8Unavailable, load_int8_classifier

    try:
        return load_int8_classifier(model, lambda: network, tokenizer, threads or torch.get_num_threads(),
                                    report).logits, ""
    except Int8Unavailable as error:
        if not fallback:
            raise CorpusError(f"--backend int8: {error}. Use --backend torch (or auto, which falls back to "
                              "torch by itself).") from None
        return None, str(error)


def _near_ties_again(score: Callable[[pd.DataFrame], np.ndarray], exact: Callable[[pd.DataFrame], np.ndarray],
                     gap: float, stats: dict) -> Callable[[pd.DataFrame], np.ndarray]:
    """`score`, except that texts whose two best probabilities are less than `gap` apart are scored by `exact`.

    int8 moves probabilities by up to a few tenths on a few texts, so a near-tie may flip; the texts
    it cannot flip are most of them. `stats` counts the texts scored and those scored again.
    """
    def scored(frame: pd.DataFrame) -> np.ndarray:
        probabilities = np.array(score(frame), dtype=np.float64)  # a copy: the scorer's array may be read-only
        if len(frame) and probabilities.shape[1] > 1:
            best = np.sort(probabilities, axis=1)
            near = np.flatnonzero(best[:, -1] - best[:, -2] < gap)
            if len(near):  # every process has the same probabilities, so all take this branch together
                probabilities[near] = exact(frame.iloc[near])
            stats["again"] += len(near)
        stats["texts"] += len(frame)
        return probabilities

    return scored


def load_scorer(model: str, kind: str, device, batch_size: int, max_length: int, context: bool,
                task: TaskLabels, backend: str = "torch", threads: int | None = None, fallback: bool = True,
                report: Callable[[str], None] = print, share: Share = Share(),
                recheck_gap: float = 0.0) -> Scorer:
    """Load `model` as `kind` on `device` and return its Scorer; with several processes each scores
    its `share` of every frame's batches, and every process gets the whole frame's probabilities.

    `backend` is choose_backend's choice: "int8" runs an encoder or NLI model through ONNX Runtime
    with `threads` threads, and texts whose two best probabilities are less than `recheck_gap` apart
    again in fp32 torch. When the model does not export it falls back to torch with `fallback`
    (Scorer.note says why) and raises CorpusError without. `report(line)` tells about a first export.
    """
    import torch

    from .data import prepare_texts

    def texts(frame: pd.DataFrame) -> list[str]:
        return prepare_texts(frame, context=context)["text"].tolist()

    if kind in ("encoder", "nli"):
        network, tokenizer = _load_classifier(model, device)
        config, stats = network.config, {"texts": 0, "again": 0}

        def fp32(inputs) -> np.ndarray:
            with torch.inference_mode():
                return network(**inputs.to(device)).logits.float().cpu().numpy()

        int8, note = _int8(model, network, tokenizer, threads, fallback, report) if backend == "int8" else (None, "")
        used = "int8" if int8 is not None else "torch"

    if kind == "encoder":
        labels = [config.id2label[i] for i in range(config.num_labels)]

        def encoder_scores(logits: Callable[[dict], np.ndarray]) -> Callable[[pd.DataFrame], np.ndarray]:
            def score_encoder(frame: pd.DataFrame) -> np.ndarray:
                if frame.empty:
                    return np.zeros((0, len(labels)))
                return _classifier_probabilities(logits, len(labels), tokenizer, texts(frame), None, batch_size,
                                                 max_length, share)
            return score_encoder

        score = encoder_scores(int8 or fp32)
        if int8 is not None and recheck_gap > 0:
            score = _near_ties_again(score, encoder_scores(fp32), recheck_gap, stats)
        return Scorer(kind, labels, score, used, note, stats)

    if kind == "nli":
        from .nli import make_nli_pairs, nli_label_ids, nli_scores

        try:
            entailment, not_entailment = nli_label_ids(config)
        except ValueError as error:
            raise CorpusError(f"--kind nli, but {model} is not an NLI model: {error}") from None
        hypotheses = {label: task.hypotheses[label] for label in task.labels}

        def nli_scores_with(logits: Callable[[dict], np.ndarray]) -> Callable[[pd.DataFrame], np.ndarray]:
            def score_nli(frame: pd.DataFrame) -> np.ndarray:
                if frame.empty:
                    return np.zeros((0, len(hypotheses)))
                pairs = make_nli_pairs(pd.DataFrame({"text": texts(frame)}), hypotheses, entailment, not_entailment)
                probs = _classifier_probabilities(logits, config.num_labels, tokenizer, pairs["premise"].tolist(),
                                                  pairs["hypothesis"].tolist(), batch_size, max_length, share)
                # Pairs are matched back to texts by text_id and hypothesis label, never by position.
                label2id = {label: i for i, label in enumerate(task.labels)}
                return nli_scores(pairs, probs[:, entailment], label2id).to_numpy()
            return score_nli

        score = nli_scores_with(int8 or fp32)
        if int8 is not None and recheck_gap > 0:
            score = _near_ties_again(score, nli_scores_with(fp32), recheck_gap, stats)
        return Scorer(kind, list(task.labels), score, used, note, stats)

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
            batches = share.mine(_batches_by_length([len(m[-1]["content"]) for m in messages], batch_size))
            rows = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
            scores = label_log_likelihoods(network, tokenizer, [messages[i] for i in rows], answers,
                                           batch_size=batch_size, progress=False)
            log_likelihoods = share.combine(len(messages), rows, scores)
            shifted = np.exp(log_likelihoods - log_likelihoods.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)

        return Scorer(kind, list(task.labels), score_lora)

    raise CorpusError(f"Unknown --kind {kind!r}: use one of {', '.join(KINDS)} (or auto).")
