"""Learning curves: F1 macro per cell with bootstrap intervals, an inverse power law fitted per
approach, the labels it needs to reach a target, a back-test of the fit, and the paper's figures.

The curve is F1(n) = a - b * n^(-c): it rises with the training size n and levels off at a
(Figueroa et al. 2012 and many since use this form for learning curves). Its interval comes from a
bootstrap over seeds: each draw takes, for every size, the seeds' scores with replacement and
refits, so the interval shows how much the training samples alone move the estimate.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

FIXED_C = 0.5  # the exponent when fewer than 3 sizes leave a, b and c undetermined
N_CURVE_BOOTSTRAP = 200
EXTRAPOLATION_FACTOR = 2.0  # an estimate beyond this many times the largest measured size is flagged


def f1_macro(y_true, y_pred) -> float:
    """F1 macro as the course computes it (utils.classification_metrics)."""
    from ..metrics import classification_metrics

    return float(classification_metrics(y_true, y_pred)["f1_macro"])


def bootstrap_interval(y_true: np.ndarray, predictions: list[np.ndarray], n_classes: int, n_resamples: int,
                       seed: int) -> tuple[float, float]:
    """95% interval of the seeds' mean F1 macro, the test rows drawn again with replacement (the same
    draws for every seed). Uses the course's vectorised F1 (utils.data_quality)."""
    from ..data_quality import _f1_macro_per_resample

    y_true = np.asarray(y_true)
    rows = np.random.default_rng(seed).integers(0, len(y_true), size=(n_resamples, len(y_true)))
    scores = np.mean([_f1_macro_per_resample(y_true, np.asarray(p), rows, n_classes) for p in predictions], axis=0)
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def cells_table(cells: list[dict]) -> pd.DataFrame:
    """One row per finished cell: approach, n_train, seed, f1_macro, seconds, gpu_memory_gib."""
    rows = [{"approach": c["approach"], "n_train": c["size"], "seed": c["seed"], "f1_macro": c["f1_macro"],
             "seconds": c["seconds"], "gpu_memory_gib": c.get("gpu_memory_gib")} for c in cells]
    from .options import APPROACH_KEYS

    frame = pd.DataFrame(rows)
    frame["approach"] = pd.Categorical(frame["approach"], categories=APPROACH_KEYS, ordered=True)
    frame = frame.sort_values(["approach", "n_train", "seed"], kind="stable").reset_index(drop=True)
    return frame.assign(approach=frame["approach"].astype(str))


def curve_table(cells: list[dict], y_true: np.ndarray, n_classes: int, n_resamples: int, seed: int) -> pd.DataFrame:
    """Per approach and size: seeds, mean and spread of F1 macro, the bootstrap interval, compute time."""
    rows = []
    frame = pd.DataFrame(cells)
    from .options import APPROACH_KEYS

    frame["order"] = frame["approach"].map({a: i for i, a in enumerate(APPROACH_KEYS)})
    frame = frame.sort_values(["order", "size", "seed"], kind="stable")
    for (approach, size), group in frame.groupby(["approach", "size"], sort=False):
        predictions = [np.asarray(p) for p in group["predictions"]]
        low, high = bootstrap_interval(y_true, predictions, n_classes, n_resamples, seed)
        memory = group["gpu_memory_gib"].dropna() if "gpu_memory_gib" in group else pd.Series(dtype=float)
        rows.append({"approach": approach, "n_train": int(size), "seeds": len(group),
                     "f1_macro": group["f1_macro"].mean(), "seed_sd": group["f1_macro"].std(ddof=1) if len(group) > 1
                     else 0.0, "ci_low": low, "ci_high": high, "seconds_per_model": group["seconds"].mean(),
                     "gpu_memory_gib": memory.max() if len(memory) else None})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the power law


def power_law(n, a: float, b: float, c: float):
    """F1(n) = a - b * n^(-c)."""
    return a - b * np.power(np.asarray(n, dtype=float), -c)


C_GRID = np.geomspace(0.05, 3.0, 400)  # the exponents the fit tries


def fit_power_law(sizes, scores) -> tuple[float, float, float] | None:
    """(a, b, c) of F1(n) = a - b * n^(-c) by least squares with 0 <= a <= 1 and b >= 0; c fixed at FIXED_C with
    fewer than 3 sizes; None with fewer than 2 sizes.

    For each c on C_GRID, a and b have a closed form (a two-variable least squares whose constraints are
    checked face by face); the c with the smallest squared error wins. Exact up to the grid's step, fast enough
    for hundreds of bootstrap refits, and the same on every machine.
    """
    sizes, scores = np.asarray(sizes, dtype=float), np.asarray(scores, dtype=float)
    if len(set(sizes)) < 2:
        return None
    return _fit(tuple(sizes), tuple(scores))


@functools.lru_cache(maxsize=4096)
def _fit(sizes: tuple, scores: tuple) -> tuple[float, float, float]:
    n, y = np.array(sizes), np.array(scores)
    cs = np.array([FIXED_C]) if len(set(sizes)) < 3 else C_GRID
    x = n[None, :] ** -cs[:, None]                      # one row per c
    mx, my = x.mean(axis=1, keepdims=True), y.mean()
    vx = ((x - mx) ** 2).mean(axis=1)
    b_free = -((x - mx) * (y - my)).mean(axis=1) / vx   # unconstrained y = a - b x
    a_free = my + b_free * mx[:, 0]
    sxx = (x * x).sum(axis=1)
    candidates = [(a_free, b_free),                                                     # inside
                  (np.full_like(vx, np.clip(my, 0, 1)), np.zeros_like(vx)),             # b = 0
                  (np.ones_like(vx), np.maximum(0, ((1 - y) * x).sum(axis=1) / sxx)),   # a = 1
                  (np.zeros_like(vx), np.maximum(0, (-y * x).sum(axis=1) / sxx))]       # a = 0
    best = (np.inf, 0.0, 0.0, FIXED_C)
    for a, b in candidates:
        feasible = (a >= 0) & (a <= 1) & (b >= 0)
        sse = np.where(feasible, ((a[:, None] - b[:, None] * x - y) ** 2).sum(axis=1), np.inf)
        i = int(np.argmin(sse))
        if sse[i] < best[0]:
            best = (float(sse[i]), float(a[i]), float(b[i]), float(cs[i]))
    return best[1], best[2], best[3]


def labels_for(params: tuple[float, float, float] | None, target: float) -> float:
    """The training size at which the curve reaches `target`: inf where it levels off below, nan without a fit."""
    if params is None:
        return math.nan
    a, b, c = params
    if target >= a:
        return math.inf
    if b <= 0:
        return 1.0
    return max(1.0, (b / (a - target)) ** (1 / c))


def _bootstrap_fits(points: pd.DataFrame, n_draws: int, seed: int) -> list:
    """Refits with the seeds' scores drawn again with replacement within each size (cached: the fits table,
    the band and the plot share them)."""
    ordered = points.sort_values(["n_train", "seed"], kind="stable")
    return _bootstrap(tuple(ordered["n_train"].astype(float)), tuple(ordered["f1_macro"].astype(float)), n_draws,
                      seed)


@functools.lru_cache(maxsize=64)
def _bootstrap(sizes: tuple, scores: tuple, n_draws: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    sizes, scores = np.array(sizes), np.array(scores)
    groups = [scores[sizes == n] for n in np.unique(sizes)]
    repeated = np.concatenate([sizes[sizes == n] for n in np.unique(sizes)])
    fits = []
    for _ in range(n_draws):
        drawn = [g[rng.integers(0, len(g), len(g))] for g in groups]
        fits.append(fit_power_law(repeated, np.concatenate(drawn)))
    return fits


def fit_table(cells_frame: pd.DataFrame, target: float, have: int, seed: int) -> pd.DataFrame:
    """Per learning approach: the fitted a, b, c, the labels needed for `target` with a 95% interval, and the flag
    when that is more than EXTRAPOLATION_FACTOR times the largest measured size."""
    rows = []
    for approach, points in cells_frame[cells_frame["n_train"] > 0].groupby("approach", sort=False):
        params = fit_power_law(points["n_train"], points["f1_macro"])
        largest = int(points["n_train"].max())
        needed = labels_for(params, target)
        draws = [labels_for(p, target) for p in _bootstrap_fits(points, N_CURVE_BOOTSTRAP, seed)]
        draws = np.array([d for d in draws if not math.isnan(d)])
        # "nearest": a draw that never reaches the target is infinite, and infinities do not interpolate
        low, high = (np.percentile(draws, [2.5, 97.5], method="nearest") if len(draws) else (math.nan, math.nan))
        rows.append({"approach": approach, "sizes": points["n_train"].nunique(), "a (plateau)": params and params[0],
                     "b": params and params[1], "c": params and params[2],
                     "c fixed": bool(params) and points["n_train"].nunique() < 3, "target": target,
                     "labels needed": needed, "needed: low": low, "needed: high": high,
                     "largest measured": largest, "labels you have": have,
                     "extrapolated": bool(not math.isnan(needed) and needed > EXTRAPOLATION_FACTOR * largest),
                     "note": "" if params else "one size only: no curve to fit"})
    return pd.DataFrame(rows)


def back_test(cells_frame: pd.DataFrame) -> pd.DataFrame:
    """Fit on every size but the largest, predict the largest, and compare with what was measured."""
    rows = []
    for approach, points in cells_frame[cells_frame["n_train"] > 0].groupby("approach", sort=False):
        largest = points["n_train"].max()
        smaller = points[points["n_train"] < largest]
        params = fit_power_law(smaller["n_train"], smaller["f1_macro"])
        measured = points.loc[points["n_train"] == largest, "f1_macro"].mean()
        predicted = float(power_law(largest, *params)) if params else math.nan
        rows.append({"approach": approach, "fitted on sizes": ", ".join(str(n) for n in sorted(smaller["n_train"]
                                                                                             .unique())),
                     "predicted size": int(largest), "predicted F1": predicted, "measured F1": measured,
                     "error (predicted - measured)": predicted - measured,
                     "note": "" if params else "needs at least 2 smaller sizes"})
    return pd.DataFrame(rows)


def fitted_values(cells_frame: pd.DataFrame, sizes) -> dict[str, np.ndarray]:
    """Each approach's fitted curve at `sizes` (for plots and for sizes that were not measured)."""
    out = {}
    for approach, points in cells_frame[cells_frame["n_train"] > 0].groupby("approach", sort=False):
        params = fit_power_law(points["n_train"], points["f1_macro"])
        if params:
            out[approach] = power_law(sizes, *params)
    return out


def fit_band(cells_frame: pd.DataFrame, sizes, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each approach's 95% band of the fitted curve at `sizes`, from the seed bootstrap."""
    out = {}
    for approach, points in cells_frame[cells_frame["n_train"] > 0].groupby("approach", sort=False):
        curves = [power_law(sizes, *p) for p in _bootstrap_fits(points, N_CURVE_BOOTSTRAP, seed) if p]
        if curves:
            out[approach] = (np.percentile(curves, 2.5, axis=0), np.percentile(curves, 97.5, axis=0))
    return out


def paper_comparison(curve: pd.DataFrame, cells_frame: pd.DataFrame, reference: pd.DataFrame,
                     names: dict[str, str]) -> pd.DataFrame:
    """The paper's figures beside ours: measured where we ran that size, else our fitted curve's value there."""
    by_name = {name: key for key, name in names.items()}
    rows = []
    for _, ref in reference.iterrows():
        key = by_name.get(ref["approach"])
        if key is None:
            continue
        mine = curve[(curve["approach"] == key) & (curve["n_train"] == ref["n_train"])]
        if len(mine):
            value, how = float(mine["f1_macro"].iloc[0]), "measured"
        elif ref["n_train"] > 0 and key in set(cells_frame["approach"]):
            fitted = fitted_values(cells_frame[cells_frame["approach"] == key], np.array([ref["n_train"]]))
            measured = cells_frame.loc[cells_frame["approach"] == key, "n_train"]
            value = float(fitted[key][0]) if key in fitted else math.nan
            how = "fitted curve" + (" (extrapolated)" if ref["n_train"] > EXTRAPOLATION_FACTOR * measured.max()
                                    else "")
        else:
            value, how = math.nan, "not run"
        rows.append({"approach": key, "n_train": int(ref["n_train"]), "paper F1 macro": float(ref["f1_macro"]),
                     "paper model": ref["model"], "ours": value, "ours: how": how})
    return pd.DataFrame(rows)
