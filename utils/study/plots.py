"""The study's figures, as PNG bytes (report.html embeds them, report.md links the saved files)."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # no display needed: figures are written to files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .curves import fit_band, fitted_values  # noqa: E402


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def learning_curves(curve: pd.DataFrame, cells: pd.DataFrame, names: dict[str, str], target: float,
                    paper: pd.DataFrame | None, seed: int, x_max: float | None = None) -> bytes:
    """F1 macro by training size per approach: each seed, the mean with its interval, the fitted curve and its band,
    the target and (on the military task) the paper's figures."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    learned = curve[curve["n_train"] > 0]
    largest = learned["n_train"].max() if len(learned) else 1
    x_max = max(x_max or 0, largest * 2)
    xs = np.geomspace(max(1, learned["n_train"].min() / 1.5 if len(learned) else 1), x_max, 80)
    fitted, band = fitted_values(cells, xs), fit_band(cells, xs, seed)
    colors = dict(zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for approach, rows in curve.groupby("approach", sort=False):
        color, label = colors.get(approach), names[approach]
        if (rows["n_train"] == 0).all():
            ax.axhline(rows["f1_macro"].iloc[0], color=color, linestyle=":", label=f"{label} (no labels)")
            continue
        points = cells[cells["approach"] == approach]
        ax.scatter(points["n_train"], points["f1_macro"], color=color, alpha=0.35, s=14)
        ax.errorbar(rows["n_train"], rows["f1_macro"], yerr=[rows["f1_macro"] - rows["ci_low"],
                                                           rows["ci_high"] - rows["f1_macro"]],
                    color=color, marker="o", capsize=3, label=label)
        if approach in fitted:
            ax.plot(xs, fitted[approach], color=color, linestyle="--", linewidth=1)
        if approach in band:
            ax.fill_between(xs, *band[approach], color=color, alpha=0.1)
        if paper is not None and len(paper):
            ref = paper[(paper["approach"] == approach) & (paper["n_train"] > 0)]
            ax.scatter(ref["n_train"], ref["paper F1 macro"], color=color, marker="x", s=50)
    ax.axhline(target, color="black", linewidth=0.8, linestyle="-.", label=f"target {target:.3f}")
    if paper is not None and len(paper):
        ax.scatter([], [], color="grey", marker="x", label="paper (Laurer et al. 2023)")
    ax.set_xscale("log")
    ax.set(xlabel="labelled training examples (log scale)", ylabel="F1 macro on the test rows",
           title="Learning curves: points = seeds, bars = 95% bootstrap interval, dashes = fitted curve")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def cost(costs: pd.DataFrame) -> bytes:
    """F1 macro now against the compute minutes of one model, one point per approach."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    minutes = costs["compute minutes (one model)"].clip(lower=1e-3)
    ax.scatter(minutes, costs["F1 now"])
    for x, y, name in zip(minutes, costs["F1 now"], costs["approach"]):
        ax.annotate(name, (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(xlabel="compute minutes for one model at its largest size (log scale)", ylabel="F1 macro now",
           title="Accuracy against compute")
    return _png(fig)


def groups(table: pd.DataFrame, title: str) -> bytes:
    """F1 macro per group with its 95% interval; small groups in grey."""
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(table) + 1.5))
    small = table["warning"] != ""
    y = np.arange(len(table))
    ax.barh(y, table["f1_macro"], color=np.where(small, "lightgrey", "tab:blue"),
            xerr=[table["f1_macro"] - table["ci_low"], table["ci_high"] - table["f1_macro"]], capsize=3)
    ax.set_yticks(y, [f"{g} ({n} rows)" for g, n in zip(table["group"], table["test rows"])])
    ax.invert_yaxis()
    ax.set(xlabel="F1 macro (95% bootstrap interval)", xlim=(0, 1), title=title)
    if small.any():
        ax.text(0.99, -0.12, "grey: too few test rows", transform=ax.transAxes, ha="right", fontsize=8)
    return _png(fig)


def finite_max(values) -> float | None:
    """The largest finite value, or None."""
    finite = [v for v in values if v is not None and not (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))]
    return max(finite) if finite else None
