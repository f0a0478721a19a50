"""Classification as natural language inference (NLI): the BERT-NLI recipe of notebook 4.

An NLI model reads two texts, a premise and a hypothesis, and says whether the premise
entails the hypothesis. To classify with it, each label becomes a hypothesis ("The quote is
not about the military or defence.") and every text is paired with every hypothesis. The label
whose hypothesis gets the highest entailment probability is the prediction.

This module turns texts into pairs, reads a model's entailment label, and turns the pairs'
probabilities back into one prediction per text. It matches pairs to texts by their `text_id`
and `hypothesis_label` columns, never by position, so shuffled pairs still give right answers.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pandas as pd

from .data import LABEL2ID
from .task import default_task
from .metrics import APPROACH_BERT, APPROACH_NLI, APPROACH_NLI_ZERO_SHOT, classification_metrics
from .modes import model_name

# One hypothesis per label: each task has its own (utils/task.py; notebooks use TASK.hypotheses).
# These are the default task's, written from the Manifesto Project codebook's definitions of its
# categories 104 (Military: Positive) and 105 (Military: Negative); kept for code that predates tasks.
HYPOTHESES: dict[str, str] = dict(default_task().hypotheses)

# The labels a fresh NLI head gets when a checkpoint has none (see load_nli_model).
NLI_ID2LABEL: dict[int, str] = {0: "entailment", 1: "not_entailment"}
NLI_LABEL2ID: dict[str, int] = {label: i for i, label in NLI_ID2LABEL.items()}

# What Laurer et al. report for the default task (Military, Manifesto corpus), F1 macro on its test
# set: Laurer, van Atteveldt, Casas and Welbers (2023), "Less Annotating, More Classifying:
# Addressing the Data Scarcity Issue of Supervised Machine Learning with Deep Transfer Learning
# and BERT-NLI", Political Analysis, doi:10.1017/pan.2023.20. Approach names match utils.APPROACH_*
# so the figures can be drawn beside the results log (utils.plot_learning_curve(reference=...)).
PAPER_REFERENCE = pd.DataFrame(
    [
        {"approach": APPROACH_NLI_ZERO_SHOT, "model": "DeBERTa-v3-base-NLI", "n_train": 0, "f1_macro": 0.592},
        {"approach": APPROACH_BERT, "model": "DeBERTa-v3-base", "n_train": 1000, "f1_macro": 0.670},
        {"approach": APPROACH_NLI, "model": "DeBERTa-v3-base-NLI", "n_train": 1000, "f1_macro": 0.725},
    ]
)


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def nli_label_ids(config) -> tuple[int, int]:
    """(entailment id, not-entailment id) of an NLI model, read from its config.

    Works for 2-class models (entailment / not_entailment) and 3-class ones (entailment /
    neutral / contradiction, where "not" is contradiction). Models differ in which id means
    entailment, so it is never assumed to be 0. Raises ValueError when no label is "entailment".
    """
    raw = {int(i): str(name) for i, name in (getattr(config, "id2label", None) or {}).items()}
    if not raw:
        raw = {int(i): str(name) for name, i in (getattr(config, "label2id", None) or {}).items()}
    id2label = {i: _normalise(name) for i, name in raw.items()}
    by_name = {name: i for i, name in id2label.items()}
    if "entailment" not in by_name:
        raise ValueError(
            f"This model has no 'entailment' label (its labels: {list(raw.values())}), so it is not an "
            "NLI model. Load it with utils.load_nli_model(), which gives it a fresh entailment/not_entailment "
            "head to fine-tune, or pick an NLI model from the hub."
        )
    entailment = by_name["entailment"]
    for name in ("not_entailment", "contradiction"):
        if name in by_name:
            return entailment, by_name[name]
    others = [i for i in id2label if i != entailment]
    if len(others) == 1:  # two classes: whatever the other one is called, it means "not entailed"
        return entailment, others[0]
    raise ValueError(
        f"Found 'entailment' but no 'not_entailment' or 'contradiction' label among {list(raw.values())}."
    )


def load_nli_model(name_or_path: str, **kwargs):
    """Load a model for sequence classification as an NLI model.

    An NLI checkpoint (it has an "entailment" label) loads as it is. Any other checkpoint, such as
    a plain BERT, gets a fresh 2-label head {0: "entailment", 1: "not_entailment"}: still the
    BERT-NLI recipe, only without NLI pre-training, so its zero-shot answers are guesses.
    `kwargs` go to `AutoModelForSequenceClassification.from_pretrained`. The weights load in
    float32 unless `dtype` says otherwise: NLI checkpoints such as the DeBERTa-v3 ones are stored
    in float16, and a model that will be fine-tuned must hold float32 weights (mixed precision
    comes from the Trainer; see utils.check_trainable_dtype).
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    kwargs.setdefault("dtype", torch.float32)

    config = AutoConfig.from_pretrained(name_or_path)
    try:
        nli_label_ids(config)
    except ValueError:
        warnings.warn(
            f"{model_name(name_or_path)} has no NLI head: it gets a fresh, untrained entailment/not_entailment head. "
            "Fine-tuning works as usual, but its zero-shot predictions mean nothing.",
            stacklevel=2,
        )
        kwargs = {"num_labels": 2, "id2label": NLI_ID2LABEL, "label2id": NLI_LABEL2ID,
                  "ignore_mismatched_sizes": True, **kwargs}
    return AutoModelForSequenceClassification.from_pretrained(name_or_path, **kwargs)


def make_nli_pairs(df: pd.DataFrame, hypotheses: dict[str, str], entailment_id: int, not_entailment_id: int,
                   text_column: str = "text", label_column: str = "label_text") -> pd.DataFrame:
    """One row per (text, hypothesis): the texts of `df` as premises, paired with every hypothesis.

    Columns: text_id (the text's position in `df`), premise, hypothesis, hypothesis_label (the
    label the hypothesis stands for) and, when `df` has `label_column`: text_label (the text's true
    label) and label (`entailment_id` for the true label's hypothesis, `not_entailment_id` for
    the others). Rows are grouped by text, hypotheses in the order of the dict.
    """
    if not hypotheses:
        raise ValueError("hypotheses is empty: give one hypothesis sentence per label.")
    empty = [label for label, sentence in hypotheses.items() if not str(sentence).strip()]
    if empty:
        raise ValueError(f"The hypothesis for {empty} is empty: write a sentence for each label.")
    if text_column not in df.columns:
        raise ValueError(f"df has no {text_column!r} column (found: {list(df.columns)}).")
    has_labels = label_column in df.columns
    if has_labels:
        missing = sorted(set(df[label_column]) - set(hypotheses))
        if missing:
            raise ValueError(
                f"No hypothesis for label(s) {missing}; the hypotheses cover {list(hypotheses)}. "
                "Add one sentence for each label to the hypotheses dict."
            )
    n_texts, n_hyp = len(df), len(hypotheses)
    pairs = pd.DataFrame({
        "text_id": np.repeat(np.arange(n_texts), n_hyp),
        "premise": np.repeat(df[text_column].astype(str).to_numpy(), n_hyp),
        "hypothesis": np.tile(list(hypotheses.values()), n_texts),
        "hypothesis_label": np.tile(list(hypotheses.keys()), n_texts),
    })
    if has_labels:
        pairs["text_label"] = np.repeat(df[label_column].to_numpy(), n_hyp)
        pairs["label"] = np.where(pairs["text_label"] == pairs["hypothesis_label"], entailment_id,
                                  not_entailment_id).astype(int)
    return pairs


def entailment_probabilities(logits, entailment_id: int) -> np.ndarray:
    """Each pair's probability of entailment: softmax over the model's classes, entailment column."""
    logits = logits[0] if isinstance(logits, tuple) else logits
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"Expected logits of shape (pairs, classes), got shape {logits.shape}.")
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted[:, entailment_id] / shifted.sum(axis=1)


def _column(pairs, name: str) -> np.ndarray:
    """A column of a DataFrame or a datasets.Dataset as a NumPy array."""
    try:
        return np.asarray(list(pairs[name]))
    except KeyError:
        raise ValueError(f"The pairs have no {name!r} column: pass the frame make_nli_pairs() made "
                         "(or a Dataset built from it).") from None


def nli_scores(pairs, entailment_probs, label2id: dict[str, int] = LABEL2ID) -> pd.DataFrame:
    """The entailment probabilities as a table: one row per text (by text_id), one column per label.

    `pairs` (DataFrame or datasets.Dataset) must list the pairs in the order of `entailment_probs`;
    that order may be shuffled, since rows are matched by text_id and hypothesis_label. Columns
    follow `label2id`: the task's (TASK.label2id; default: the default task's).
    """
    probs = np.asarray(entailment_probs, dtype=float)
    frame = pd.DataFrame({"text_id": _column(pairs, "text_id"),
                          "hypothesis_label": _column(pairs, "hypothesis_label")})
    if len(frame) != len(probs):
        raise ValueError(f"{len(frame)} pairs but {len(probs)} probabilities: they must come from the same pairs, "
                         "in the same order.")
    frame["probability"] = probs
    unknown = sorted(set(frame["hypothesis_label"]) - set(label2id))
    if unknown:
        raise ValueError(f"Hypothesis label(s) {unknown} are not in label2id {list(label2id)}.")
    if frame.duplicated(["text_id", "hypothesis_label"]).any():
        raise ValueError("Some (text_id, hypothesis_label) pairs occur twice: each text needs each hypothesis once.")
    table = frame.pivot(index="text_id", columns="hypothesis_label", values="probability")
    if table.isna().to_numpy().any():
        raise ValueError("Some texts lack a pair for some hypothesis: every text needs every hypothesis.")
    table = table[sorted(table.columns, key=label2id.__getitem__)]
    table.columns.name = None
    return table.sort_index()


def nli_predict(pairs, entailment_probs, label2id: dict[str, int] = LABEL2ID) -> np.ndarray:
    """Predicted label ids (`label2id`: the task's), one per text in text_id order: the label whose
    hypothesis is most entailed."""
    table = nli_scores(pairs, entailment_probs, label2id)
    ids = np.array([label2id[label] for label in table.columns])
    return ids[table.to_numpy().argmax(axis=1)]


def nli_true_labels(pairs, label2id: dict[str, int] = LABEL2ID) -> np.ndarray:
    """The texts' true label ids (`label2id`: the task's), one per text in text_id order (needs the
    text_label column)."""
    frame = pd.DataFrame({"text_id": _column(pairs, "text_id"), "text_label": _column(pairs, "text_label")})
    per_text = frame.drop_duplicates("text_id").set_index("text_id").sort_index()["text_label"]
    return per_text.map(label2id).to_numpy()


def nli_compute_metrics(eval_pairs, entailment_id: int,
                        label2id: dict[str, int] = LABEL2ID) -> Callable[[object], dict[str, float]]:
    """A `compute_metrics` for the Trainer that scores texts, not pairs.

    The Trainer evaluates pairs; this turns their logits into one prediction per text (nli_predict)
    and returns utils.classification_metrics (f1_macro, ...) against the texts' true labels.
    `eval_pairs` is the frame the evaluation dataset was made from, in the same order; `label2id`
    the task's (TASK.label2id).
    """
    y_true = nli_true_labels(eval_pairs, label2id)
    pair_labels = _column(eval_pairs, "label")

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if labels is not None and len(labels) == len(pair_labels) and not np.array_equal(labels, pair_labels):
            raise ValueError("The evaluation pairs are not in the order of eval_pairs: build the evaluation "
                             "dataset from the same frame you pass to nli_compute_metrics.")
        y_pred = nli_predict(eval_pairs, entailment_probabilities(logits, entailment_id), label2id)
        return classification_metrics(y_true, y_pred)

    return compute_metrics
