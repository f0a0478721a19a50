"""From the finished cells to every table of the study: the curves, the fits and labels needed, the
back-test, the paper's figures, the cost table and the validity tables. Pure: the same cells give
the same tables, which is what `--replicate` checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import curves, validity
from .approaches import APPROACH_NAMES

# Columns that measure time or memory: they differ from run to run, so replication ignores them.
TIMING_COLUMNS = {"seconds", "seconds_per_model", "gpu_memory_gib", "compute minutes (one model)",
                  "compute minutes (all its cells)"}


@dataclass
class Analysis:
    """Every table of a study and the few numbers the text quotes."""

    tables: dict[str, pd.DataFrame]
    target: float
    target_given: bool
    chosen: str
    gap: dict
    notes: list[str] = field(default_factory=list)
    cells_raw: list[dict] = field(default_factory=list)  # the finished cells themselves (revisions, details)


def analyse(cells: list[dict], data, r, skipped: dict[str, str]) -> Analysis:
    """All tables of the study from its finished cells (`data`: grid.StudyData, `r`: options.Resolved)."""
    y_true = data.test["label"].to_numpy()
    n_classes = len(data.task.labels)
    frame = curves.cells_table(cells)
    curve = curves.curve_table(cells, y_true, n_classes, r.n_resamples, r.seed)
    largest = curve.loc[curve.groupby("approach", sort=False)["n_train"].idxmax()].set_index("approach")
    order = [a for a in r.approaches if a in largest.index]
    largest = largest.loc[order]
    chosen = str(largest["f1_macro"].idxmax())
    target_given = r.target is not None
    target = float(r.target) if target_given else float(min(1.0, largest["f1_macro"].max() + 0.05))
    have = len(data.pool)
    fits = curves.fit_table(frame, target, have, r.seed)
    backtest = curves.back_test(frame)
    costs = cost_table(largest, fits, frame, target, have, r.seconds_per_label)
    tables = {"cells": frame, "learning_curve": curve, "fits": fits, "back_test": backtest, "cost": costs}

    if data.task.name == "manifesto-military":
        from ..results import reference_results

        tables["paper"] = curves.paper_comparison(curve, frame, reference_results(task=data.task), APPROACH_NAMES)

    chosen_cells = [c for c in cells if c["approach"] == chosen and c["size"] == largest.loc[chosen, "n_train"]]
    predictions = [np.asarray(c["predictions"]) for c in chosen_cells]
    notes = [f"{APPROACH_NAMES[a]}: left out, {why}." for a, why in skipped.items()]
    gap = {"best": None, "worst": None, "gap": math.nan, "among": "no group column"}
    if data.group_column:
        groups = validity.group_table(data.test, data.group_column, predictions, n_classes, r.n_resamples, r.seed,
                                      r.min_group_rows)
        tables["groups"] = groups
        gap = validity.group_gap(groups)
        notes += [f"Group {row['group']!r}: {row['warning']}." for _, row in groups.iterrows() if row["warning"]]
    else:
        notes.append("The task names no group_column, so F1 per group is left out: add `group_column` to the task "
                     "file (or pass --group-column) to check whether the model works as well for every group.")
    tables["confusion"] = validity.confusion_table(y_true, predictions, list(data.task.labels)).reset_index()
    tables["per_class"] = validity.class_table(y_true, predictions, data.task.id2label).reset_index(names="class")
    return Analysis(tables, target, target_given, chosen, gap, notes, cells)


def cost_table(largest: pd.DataFrame, fits: pd.DataFrame, frame: pd.DataFrame, target: float, have: int,
               seconds_per_label: float) -> pd.DataFrame:
    """approach, F1 now, labels still needed, annotation hours, compute minutes (and what they rest on)."""
    rows = []
    fits = fits.set_index("approach")
    for approach, now in largest.iterrows():
        if approach in fits.index:
            needed = fits.loc[approach, "labels needed"]
            extrapolated = bool(fits.loc[approach, "extrapolated"])
        else:  # zero-shot: it learns from no labels, so labels cannot raise it
            needed = 0.0 if now["f1_macro"] >= target else math.inf
            extrapolated = False
        still = math.nan if math.isnan(needed) else (math.inf if math.isinf(needed)
                                                     else max(0, math.ceil(needed) - have))
        hours = still * seconds_per_label / 3600 if not math.isnan(still) else math.nan
        rows.append({"approach": approach, "F1 now": now["f1_macro"], "labels still needed": still,
                     "annotation hours": hours, "compute minutes (one model)": now["seconds_per_model"] / 60,
                     "F1 now: low": now["ci_low"], "F1 now: high": now["ci_high"], "at size": int(now["n_train"]),
                     "labels needed": math.ceil(needed) if math.isfinite(needed) else needed,
                     "extrapolated": extrapolated,
                     "compute minutes (all its cells)": frame.loc[frame["approach"] == approach, "seconds"].sum() / 60,
                     "gpu_memory_gib": now["gpu_memory_gib"]})
    return pd.DataFrame(rows)


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """A table without its timing columns, to compare two runs of the same study."""
    return table.drop(columns=[c for c in table.columns if c in TIMING_COLUMNS])
