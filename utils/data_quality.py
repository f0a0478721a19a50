"""Finding label errors (notebook 5) and handing them to the annotation notebook (notebook 6).

The notebook shows the steps that matter: embedding the texts, the classifier, cleanlab's calls.
This module holds the plumbing around them: out-of-sample probabilities by cross-validation, the
ranked table of flagged examples, two plots, and the file that passes the flagged examples on.
Functions that name the classes take `class_names`: the task's labels in id order (TASK.labels;
without them, the default task's).
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from .data import LABELS, DataError
from .metrics import results_dir
from .task import DEFAULT_TASK, Task, task_name

# How notebook 5 names its runs in the results log.
APPROACH_EMBEDDINGS = "embeddings + logistic regression"
APPROACH_EMBEDDINGS_ISSUES_REMOVED = f"{APPROACH_EMBEDDINGS} (issues removed)"
APPROACH_EMBEDDINGS_ISSUES_RELABELLED = f"{APPROACH_EMBEDDINGS} (issues relabelled)"

LABEL_ISSUES_FILE = "label_issues.parquet"
# The columns of the file notebook 6 reads, in this order. label_text is the label the data set gives.
LABEL_ISSUE_COLUMNS = ["text_original", "text_preceding", "text_following", "text", "label_text",
                       "suggested_label", "label_quality", "is_label_issue", "split", "embedding"]
_TEXT_COLUMNS = ["text_original", "text_preceding", "text_following", "text", "label_text", "suggested_label",
                 "split"]


def _class_counts(labels: np.ndarray, class_names: list[str]) -> np.ndarray:
    """Examples per class id 0..K-1; an error for ids outside that range."""
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be a flat list of class ids (whole numbers), got an array of shape "
                         f"{labels.shape} and dtype {labels.dtype}.")
    outside = sorted(set(labels[(labels < 0) | (labels >= len(class_names))].tolist()))
    if outside:
        raise ValueError(f"labels {outside} are not class ids: with {len(class_names)} classes the ids are "
                         f"0..{len(class_names) - 1} ({class_names}).")
    return np.bincount(labels, minlength=len(class_names))


def out_of_sample_pred_probs(model, features, labels, *, n_splits: int = 5, seed: int = 42,
                             class_names: list[str] | None = None) -> np.ndarray:
    """Predicted class probabilities for every example from a copy of `model` that never saw it.

    K-fold cross-validation: the data is cut into `n_splits` parts with the same label proportions
    (StratifiedKFold); each part is predicted by a copy of `model` trained on the other parts.
    Returns an array of shape (n_examples, n_classes) whose column k is class id k, as cleanlab
    expects. `model` is any scikit-learn classifier with predict_proba; it is not changed.

    Every class needs at least 2 examples. With fewer examples than `n_splits` in the smallest
    class, fewer parts are used (with a warning), so that each part holds every class.
    """
    class_names = list(LABELS if class_names is None else class_names)
    labels = np.asarray(labels)
    if len(labels) != len(features):
        raise ValueError(f"features has {len(features)} rows but labels has {len(labels)}: give one label per row.")
    if n_splits < 2:
        raise ValueError(f"n_splits must be at least 2 (train on some parts, predict the rest), got {n_splits}.")
    counts = _class_counts(labels, class_names)
    too_few = {class_names[k]: int(n) for k, n in enumerate(counts) if n < 2}
    if too_few:
        raise DataError(
            f"Cross-validation needs at least 2 examples of every class; these have fewer: {too_few}. "
            "Use more training rows (a larger N_TRAIN), or leave a class out and pass class_names for the "
            "classes you keep."
        )
    folds = int(min(n_splits, counts.min()))
    if folds < n_splits:
        warnings.warn(f"The smallest class has only {counts.min()} examples: using {folds} folds instead of "
                      f"{n_splits}.", stacklevel=2)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(clone(model), features, labels, cv=cv, method="predict_proba")


def label_issues_table(df: pd.DataFrame, pred_probs: np.ndarray, label_quality, is_label_issue, *,
                       embeddings: np.ndarray | None = None, split: str = "train",
                       class_names: list[str] | None = None) -> pd.DataFrame:
    """Every example of `df`, the most doubtful label first: the table to read and to save.

    `df` needs a `label` column (class ids) and brings its text columns; `pred_probs` are the
    out-of-sample probabilities, `label_quality` cleanlab's score per example (low: the label
    is doubtful) and `is_label_issue` cleanlab's verdict. The suggested label is the class the
    model finds most likely. The index keeps each example's row in `df`.
    """
    class_names = list(LABELS if class_names is None else class_names)
    pred_probs = np.asarray(pred_probs)
    label_quality, is_label_issue = np.asarray(label_quality, dtype=float), np.asarray(is_label_issue, dtype=bool)
    sizes = {"df": len(df), "pred_probs": len(pred_probs), "label_quality": len(label_quality),
             "is_label_issue": len(is_label_issue)}
    if embeddings is not None:
        sizes["embeddings"] = len(embeddings)
    if len(set(sizes.values())) != 1:
        raise ValueError(f"Need one value per example everywhere, got these lengths: {sizes}.")
    if pred_probs.ndim != 2 or pred_probs.shape[1] != len(class_names):
        raise ValueError(f"pred_probs must have one column per class ({len(class_names)}), got shape "
                         f"{pred_probs.shape}.")
    labels = df["label"].to_numpy()
    _class_counts(labels, class_names)
    names = np.array(class_names, dtype=object)
    table = df[[c for c in LABEL_ISSUE_COLUMNS[:4] if c in df.columns]].copy()
    table["label_text"] = names[labels]
    table["suggested_label"] = names[pred_probs.argmax(axis=1)]
    table["label_quality"] = label_quality
    table["is_label_issue"] = is_label_issue
    table["split"] = split
    if embeddings is not None:
        table["embedding"] = [np.asarray(row, dtype=float).tolist() for row in embeddings]
    return table.sort_values("label_quality", kind="stable")


def plot_label_quality(label_quality, is_label_issue, title: str = "Label quality scores") -> plt.Axes:
    """Histogram of the label quality scores, the flagged examples in their own colour."""
    label_quality, is_label_issue = np.asarray(label_quality, dtype=float), np.asarray(is_label_issue, dtype=bool)
    _, ax = plt.subplots(figsize=(7, 3))
    bins = np.linspace(0, 1, 41)
    ax.hist([label_quality[~is_label_issue], label_quality[is_label_issue]], bins=bins, stacked=True,
            color=["tab:blue", "tab:red"],
            label=[f"not flagged ({(~is_label_issue).sum()})", f"flagged as label issue ({is_label_issue.sum()})"])
    ax.set(title=title, xlabel="label quality score (low: the given label is doubtful)", ylabel="examples",
           xlim=(0, 1))
    ax.legend()
    return ax


def plot_confident_joint(confident_joint, class_names: list[str] | None = None,
                         title: str = "Given label vs probably true label") -> plt.Axes:
    """Heatmap of cleanlab's confident joint: rows the given label, columns the probably true one.

    The off-diagonal cells are the estimated label errors: how many examples given the row's
    label probably belong to the column's class. They are coloured (the darker, the more); the
    diagonal, the labels that look right, is grey so that it does not outshine them.
    """
    class_names = list(LABELS if class_names is None else class_names)
    counts = np.asarray(confident_joint)
    diagonal = np.eye(len(counts), dtype=bool)
    errors = np.ma.masked_array(counts, mask=diagonal)
    _, ax = plt.subplots(figsize=(5, 4))
    ax.imshow(np.where(diagonal, 1, np.nan), cmap="Greys", vmin=0, vmax=8)
    ax.imshow(errors, cmap="Reds", vmin=0, vmax=max(1, errors.max() or 0))
    for (i, j), value in np.ndenumerate(counts):
        dark = not diagonal[i, j] and value > 0.6 * max(1, errors.max() or 0)
        ax.text(j, i, f"{value:g}", ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(title=title, xlabel="probably true label", ylabel="given label")
    return ax


def _f1_macro_per_resample(y_true: np.ndarray, y_pred: np.ndarray, rows: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 macro of each resample (one per row of `rows`), as sklearn computes it: the mean over
    the classes that occur in the labels or the predictions of that resample."""
    n_resamples = len(rows)
    codes = (y_true[rows] * n_classes + y_pred[rows]) + (np.arange(n_resamples) * n_classes**2)[:, None]
    confusion = np.bincount(codes.ravel(), minlength=n_resamples * n_classes**2)
    confusion = confusion.reshape(n_resamples, n_classes, n_classes)
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    wrong = confusion.sum(axis=2) + confusion.sum(axis=1) - 2 * tp  # false negatives + false positives
    present = (tp + wrong) > 0
    f1 = np.divide(2 * tp, 2 * tp + wrong, out=np.zeros(tp.shape), where=present)
    return f1.sum(axis=1) / present.sum(axis=1)


def bootstrap_f1_differences(y_true, predictions: dict, baseline: str, *, n_resamples: int = 1000,
                             seed: int = 42) -> pd.DataFrame:
    """How far each approach's F1 macro differs from `baseline`'s, and how much of that may be luck.

    `predictions` maps an approach name to its predicted class ids for the same test rows. The
    test rows are drawn again with replacement `n_resamples` times, the same draws for every
    approach (a paired bootstrap). Per approach: F1 macro on the whole test set, the difference
    to the baseline, the range that holds the middle 95% of the resampled differences, and the
    share of resamples in which the approach beats the baseline. An interval that contains 0
    means this test set cannot tell the two apart.
    """
    if baseline not in predictions:
        raise KeyError(f"baseline {baseline!r} is not among the predictions: {list(predictions)}.")
    y_true = np.asarray(y_true)
    preds = {name: np.asarray(p) for name, p in predictions.items()}
    if any(len(p) != len(y_true) for p in preds.values()) or len(y_true) == 0:
        raise ValueError(f"Every approach needs one prediction per test row ({len(y_true)}), got "
                         f"{ {name: len(p) for name, p in preds.items()} }.")
    n_classes = int(max(y_true.max(), *(p.max() for p in preds.values()))) + 1
    rows = np.random.default_rng(seed).integers(0, len(y_true), size=(n_resamples, len(y_true)))
    everything = np.arange(len(y_true))[None, :]
    full = {name: _f1_macro_per_resample(y_true, p, everything, n_classes)[0] for name, p in preds.items()}
    resampled = {name: _f1_macro_per_resample(y_true, p, rows, n_classes) for name, p in preds.items()}
    table = []
    for name in preds:
        difference = resampled[name] - resampled[baseline]
        low, high = np.percentile(difference, [2.5, 97.5])
        table.append({"approach": name, "f1_macro": full[name], "difference": full[name] - full[baseline],
                      "95% interval: low": low, "95% interval: high": high,
                      "share of resamples better": (difference > 0).mean()})
    return pd.DataFrame(table).set_index("approach")


def label_issues_path(task: Task | str | None = None) -> pathlib.Path:
    """Where notebook 5 saves the flagged examples of `task` and notebook 6 reads them.

    One file per task (the default task's has no task in its name), so that runs of two tasks
    in one results folder never review each other's examples.
    """
    name = task_name(task)
    return results_dir() / (LABEL_ISSUES_FILE if name == DEFAULT_TASK else f"label_issues-{name}.parquet")


def save_label_issues(df: pd.DataFrame, task: Task | str | None = None) -> pathlib.Path:
    """Save the examples of `task` to annotate (e.g. the flagged rows of label_issues_table) for notebook 6.

    Writes the columns LABEL_ISSUE_COLUMNS (others are left out) to label_issues_path(task) and
    returns that path. A previous file is replaced.
    """
    missing = [c for c in LABEL_ISSUE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"Cannot save label issues: columns {missing} are missing. Expected {LABEL_ISSUE_COLUMNS}; "
                         "build the table with utils.label_issues_table(..., embeddings=...).")
    out = df[LABEL_ISSUE_COLUMNS].reset_index(drop=True).copy()
    for column in _TEXT_COLUMNS:
        out[column] = out[column].astype(str)
    out["label_quality"] = out["label_quality"].astype(float)
    out["is_label_issue"] = out["is_label_issue"].astype(bool)
    out["embedding"] = [np.asarray(row, dtype=float).tolist() for row in out["embedding"]]
    if len({len(row) for row in out["embedding"]}) > 1:
        raise ValueError("Every embedding must have the same length.")
    path = label_issues_path(task)
    # Write to a temporary file and rename: notebook 6 never reads a half-written file.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        out.to_parquet(tmp_name, index=False)
        os.replace(tmp_name, path)
    finally:
        pathlib.Path(tmp_name).unlink(missing_ok=True)
    return path


def load_label_issues(task: Task | str | None = None) -> pd.DataFrame:
    """The examples of `task` notebook 5 saved, one row each; `embedding` holds a list of floats per row."""
    path = label_issues_path(task)
    if not path.exists():
        raise FileNotFoundError(
            f"No flagged examples at {path}. Run notebook 5 (5_data_quality_cleanlab.ipynb) first, with the same TASK: "
            "it finds label issues with cleanlab and saves them there. If you ran it with another COURSE_RESULTS_DIR, "
            "set the same folder here."
        )
    df = pd.read_parquet(path)
    for column in _TEXT_COLUMNS:
        df[column] = df[column].astype(str)
    df["embedding"] = [np.asarray(row, dtype=float).tolist() for row in df["embedding"]]
    return df
