"""Validity of the chosen approach: F1 macro per group of the test rows (the task's group_column)
with its rows and a bootstrap interval, the gap between the best and worst group, and a per-class
confusion table. A group with few test rows gets a warning: its score says little.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .curves import bootstrap_interval, f1_macro


def group_table(test: pd.DataFrame, group_column: str, predictions: list[np.ndarray], n_classes: int,
                n_resamples: int, seed: int, min_rows: int) -> pd.DataFrame:
    """Per group: test rows, F1 macro (mean over the seeds' models), its 95% bootstrap interval, a warning."""
    y_true = test["label"].to_numpy()
    groups = test[group_column].astype(str).to_numpy()
    rows = []
    for group in sorted(set(groups)):
        mask = groups == group
        scores = [f1_macro(y_true[mask], p[mask]) for p in predictions]
        low, high = bootstrap_interval(y_true[mask], [p[mask] for p in predictions], n_classes, n_resamples, seed)
        labels = int(len(set(y_true[mask])))
        warning = ""
        if mask.sum() < min_rows:
            warning = f"only {int(mask.sum())} test rows (fewer than {min_rows}): too few to say much"
        rows.append({"group": group, "test rows": int(mask.sum()), "labels present": labels,
                     "f1_macro": float(np.mean(scores)), "ci_low": low, "ci_high": high, "warning": warning})
    return pd.DataFrame(rows).sort_values("f1_macro", ascending=False, kind="stable").reset_index(drop=True)


def group_gap(groups: pd.DataFrame) -> dict:
    """The best and worst group's F1 macro and their gap, among the groups with no warning (all, if none)."""
    solid = groups[groups["warning"] == ""]
    used = solid if len(solid) >= 2 else groups
    if len(used) < 2:
        return {"best": None, "worst": None, "gap": math.nan, "among": "fewer than 2 groups"}
    best, worst = used.iloc[0], used.iloc[-1]
    return {"best": best["group"], "worst": worst["group"], "gap": float(best["f1_macro"] - worst["f1_macro"]),
            "among": "groups with enough test rows" if used is solid else "all groups, each of them small"}


def confusion_table(y_true: np.ndarray, predictions: list[np.ndarray], labels: list[str]) -> pd.DataFrame:
    """Counts of true label (rows) by predicted label (columns), summed over the seeds' models."""
    from sklearn.metrics import confusion_matrix

    ids = list(range(len(labels)))
    total = sum(confusion_matrix(y_true, p, labels=ids) for p in predictions)
    table = pd.DataFrame(total, index=[f"true: {l}" for l in labels], columns=[f"predicted: {l}" for l in labels])
    return table.rename_axis("label")


def class_table(y_true: np.ndarray, predictions: list[np.ndarray], id2label: dict[int, str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (utils.report_table), over the seeds' predictions together."""
    from ..metrics import report_table

    y = np.concatenate([y_true] * len(predictions))
    return report_table(y, np.concatenate(predictions), id2label)
