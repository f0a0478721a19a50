"""Small matplotlib plots used across the notebooks. Each returns the figure's Axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay


def plot_label_distribution(labels: pd.Series, title: str = "Label distribution") -> plt.Axes:
    """Bar chart of how many examples each label has, with the counts on the bars."""
    counts = pd.Series(labels).value_counts()
    _, ax = plt.subplots(figsize=(6, 3))
    bars = ax.barh(counts.index.astype(str), counts.values, color="tab:blue")
    ax.bar_label(bars, padding=3)
    ax.invert_yaxis()
    ax.set(title=title, xlabel="examples")
    ax.margins(x=0.15)
    return ax


def plot_confusion_matrix(y_true, y_pred, id2label: dict[int, str], title: str = "Confusion matrix") -> plt.Axes:
    """Rows: the true label; columns: the prediction. The diagonal holds the correct answers."""
    ids = sorted(id2label)
    _, ax = plt.subplots(figsize=(5, 4))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=ids, display_labels=[id2label[i] for i in ids],
                                            ax=ax, colorbar=False, xticks_rotation=30, cmap="Blues")
    ax.set_title(title)
    return ax


def plot_loss(log_history: list[dict], title: str = "Training and evaluation loss") -> plt.Axes:
    """Training and evaluation loss against the training step, from `trainer.state.log_history`."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    if not train and not evals:
        raise ValueError("log_history has no 'loss' or 'eval_loss' entries: set logging_steps / eval_strategy "
                         "in TrainingArguments so the Trainer logs losses.")
    _, ax = plt.subplots(figsize=(6, 3))
    if train:
        ax.plot(*zip(*train), marker=".", label="training loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="evaluation loss")
    ax.set(title=title, xlabel="step", ylabel="loss")
    ax.legend()
    return ax


def plot_learning_curve(results: pd.DataFrame, metric: str = "f1_macro", reference: pd.DataFrame | None = None,
                        title: str = "Performance vs training data") -> plt.Axes:
    """`metric` against the number of training examples, one line per approach.

    `results` needs columns approach, n_train and `metric` (e.g. utils.latest_results(...)).
    Approaches missing from `results` are simply absent. `reference` (same columns) is drawn as
    hollow markers, e.g. the figures a paper reports.
    """
    _, ax = plt.subplots(figsize=(7, 4))
    if results.empty and (reference is None or reference.empty):
        ax.text(0.5, 0.5, "no results logged yet: run the notebooks first", ha="center", va="center",
                transform=ax.transAxes)
    for approach, group in results.groupby("approach", sort=False):
        group = group.sort_values("n_train")
        ax.plot(group["n_train"], group[metric], marker="o", label=approach)
    if reference is not None:
        for approach, group in reference.groupby("approach", sort=False):
            ax.scatter(group["n_train"], group[metric], facecolors="none", edgecolors="grey", s=60)
            for _, row in group.iterrows():
                ax.annotate(f"{approach} (paper)", (row["n_train"], row[metric]), textcoords="offset points",
                            xytext=(5, -10), fontsize=8, color="grey")
    if not results.empty and (results["n_train"] > 0).all() and np.ptp(results["n_train"]) > 0:
        ax.set_xscale("log")
        # Label the sizes that were run with plain numbers (100, 1000), not "10^2".
        ax.set_xticks(sorted(results["n_train"].unique()))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(title=title, xlabel="training examples", ylabel=metric.replace("_", " "), ylim=(0, 1))
    if not results.empty:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax
