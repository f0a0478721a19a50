"""The words of the study: the answer in one paragraph, the methods paragraph with every number
filled in, and the blocks of the report (headings, text, tables, figures) in reading order.
"""

from __future__ import annotations

import math
import platform

from .approaches import APPROACH_NAMES
from .replicate import REPLICATION_TOLERANCE
from .report import CI_WARNING, fmt


def _revisions(cells: list[dict]) -> dict[str, str]:
    out = {}
    for cell in cells:
        if cell.get("details", {}).get("revision"):
            out.setdefault(cell["approach"], cell["details"]["revision"])
    return out


def _rev(revisions: dict[str, str], approach: str) -> str:
    revision = revisions.get(approach, "unknown")
    return f"({revision})" if revision.startswith("ci stand-in") else f"(revision {revision})"


def _sizes(a, approach: str) -> list[int]:
    cells = a.tables["cells"]
    return sorted(int(n) for n in cells.loc[cells["approach"] == approach, "n_train"].unique())


def answer(a, data, r) -> str:
    """The study's answer: which approach, how many more labels for the target, how many hours."""
    cost = a.tables["cost"].set_index("approach")
    best = cost.loc[a.chosen]
    text = (f"Best now: {APPROACH_NAMES[a.chosen]}, F1 macro {fmt(best['F1 now'])} (95% interval "
            f"{fmt(best['F1 now: low'])}–{fmt(best['F1 now: high'])}) with {best['at size']} labelled examples. ")
    target = f"the target F1 macro {a.target:.3f}" + ("" if a.target_given else " (the best score + 0.05)")
    reachable = cost[cost["labels still needed"].apply(lambda v: isinstance(v, (int, float)) and math.isfinite(v))]
    if len(reachable):
        first = reachable.sort_values(["labels still needed", "compute minutes (one model)"]).iloc[0]
        name = reachable.sort_values(["labels still needed", "compute minutes (one model)"]).index[0]
        text += (f"To reach {target}, {APPROACH_NAMES[name]} needs about {fmt(first['labels needed'])} labels by its "
                 f"fitted curve: {fmt(first['labels still needed'])} more than the {len(data.pool)} you have, about "
                 f"{first['annotation hours']:.1f} annotation hours at {r.seconds_per_label:g} s per label.")
        if first["extrapolated"]:
            text += (" This extrapolates past twice the largest measured size: treat it as a rough guess and "
                     "measure again after labelling part of it.")
    else:
        text += f"No approach's fitted curve reaches {target}: it levels off below it (see the fits table)."
    return text


def methods(a, data, r, versions: dict[str, str], device: str) -> str:
    """The methods paragraph, every number filled in from the study."""
    cells = a.tables["cells"]
    revisions = _revisions(a.cells_raw)
    task = data.task
    parts = [
        f"We compared {cells['approach'].nunique()} approaches on the task “{task.name}”"
        + (f" ({task.description})" if task.description else "") + f", with {len(task.labels)} labels: "
        + ", ".join(task.labels) + ".",
        f"Training examples were drawn from the {len(data.pool)} labelled rows of the train file "
        f"({data.files['train'].rsplit('/', 1)[-1]}); every model was scored on the same {len(data.test)} held-out "
        f"rows of the test file ({data.files['test'].rsplit('/', 1)[-1]}"
        + (f", a stratified sample drawn with seed {r.seed}" if r.n_test else ", all rows") + ").",
        f"For each training size we drew {len(r.seeds)} stratified random samples (seeds "
        + ", ".join(map(str, r.seeds)) + "), trained one model per sample and report the mean F1 macro over the "
        f"samples with a 95% percentile bootstrap interval ({r.n_resamples} resamples of the test rows, the same "
        "resamples for every sample's predictions).",
        "The text was " + ("the quote with the sentences before and after it, as in Laurer et al. (2023)."
                           if r.context else "the quote alone."),
    ]
    recipes = {
        "tfidf": lambda: (f"TF-IDF (unigrams and bigrams, min_df 2, sublinear term frequency) with class-balanced "
                          f"logistic regression (scikit-learn {versions.get('scikit-learn', '?')}), sizes "
                          f"{_list(_sizes(a, 'tfidf'))}"),
        "embeddings": lambda: (f"sentence embeddings from {r.model_ids['embedding_model']} "
                               f"{_rev(revisions, 'embeddings')[:-1]}; normalised, at most {r.max_length} tokens) "
                               f"with logistic regression, sizes {_list(_sizes(a, 'embeddings'))}"),
        "encoder": lambda: (f"{r.model_ids['model']} {_rev(revisions, 'encoder')} fine-tuned "
                            f"with AdamW at learning rate {r.learning_rate:g}, batch size {r.batch_size}, "
                            f"{r.epochs} epoch(s) or more so that each model takes at least {r.min_steps} optimiser "
                            f"steps, 10% warm-up, weight decay 0.01, at most {r.max_length} tokens (the 99th "
                            f"percentile of the training texts' token counts), sizes {_list(_sizes(a, 'encoder'))}"),
        "nli-zero-shot": lambda: (f"{r.model_ids['nli_model']} {_rev(revisions, 'nli-zero-shot')} "
                                  f"zero-shot, one hypothesis per label from the task file"),
        "nli": lambda: (f"the same NLI model fine-tuned as BERT-NLI (each text paired with each of the "
                        f"{len(task.labels)} hypotheses; learning rate {r.nli_learning_rate:g}, batch size "
                        f"{r.batch_size}, the same epoch rule, 6% warm-up), sizes {_list(_sizes(a, 'nli'))}"),
    }
    ran = [k for k in recipes if k in set(cells["approach"])]
    parts.append("The approaches: " + "; ".join(recipes[k]() for k in ran) + ". The fine-tuned models used no "
                 "validation rows: each model of size n saw exactly n labels and was scored after its last epoch.")
    fits, back = a.tables["fits"], a.tables["back_test"].set_index("approach")
    parts.append("We fitted an inverse power law F1(n) = a − b·n^(−c) to each approach's points by least squares "
                 "(0 ≤ a ≤ 1, b ≥ 0; a and b in closed form for each c on a grid of 400 values from 0.05 to 3; c "
                 f"fixed at 0.5 where fewer than 3 sizes were measured) and took a 95% interval of the labels needed "
                 f"from 200 refits with each size's seeds resampled; the target was F1 macro {a.target:.3f}.")
    if a.chosen in back.index and not math.isnan(back.loc[a.chosen, "predicted F1"]):
        b = back.loc[a.chosen]
        parts.append(f"Back-test: fitted on sizes {b['fitted on sizes']} only, the curve of "
                     f"{APPROACH_NAMES[a.chosen]} predicted F1 macro {b['predicted F1']:.3f} at n = "
                     f"{b['predicted size']}, where we measured {b['measured F1']:.3f} (error "
                     f"{b['error (predicted - measured)']:+.3f}).")
    if "groups" in a.tables and not math.isnan(a.gap["gap"]):
        parts.append(f"Across the groups of {data.group_column!r}, F1 macro of {APPROACH_NAMES[a.chosen]} ranged "
                     f"from {a.gap['worst']} to {a.gap['best']}, a gap of {a.gap['gap']:.3f} ({a.gap['among']}).")
    parts.append("Software: Python " + platform.python_version() + ", "
                 + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python")
                 + f"; run mode {r.mode} on {device}.")
    if r.mode == "ci":
        parts.append("The models were offline stand-ins not trained for this task, so the scores only show that "
                     "the study runs.")
    return " ".join(parts)


def _list(sizes: list[int]) -> str:
    return ", ".join(map(str, sizes)) if sizes else "none"


def report_blocks(a, data, r, figures: dict[str, bytes], methods_text: str, command: str,
                  grid_text: str) -> list[tuple]:
    """The report, in reading order."""
    blocks = []
    if r.mode == "ci":
        blocks.append(("warn", CI_WARNING))
    blocks += [("p", answer(a, data, r)),
               ("p", f"Task {data.task.name}: {len(data.pool)} labelled training rows, {len(data.test)} held-out "
                     f"test rows, labels {', '.join(data.task.labels)}. Run mode {r.mode}."),
               ("h2", "Cost beside accuracy"),
               ("p", f"Annotation hours assume {r.seconds_per_label:g} seconds per label (--seconds-per-label; our "
                     "assumption: time yourself in notebook 6). Compute minutes were measured on this machine."),
               ("table", a.tables["cost"]), ("img", "cost.png", figures["cost.png"]),
               ("h2", "Learning curves"), ("img", "learning_curves.png", figures["learning_curves.png"]),
               ("table", a.tables["learning_curve"]),
               ("h2", "How many labels to reach the target"),
               ("p", f"Target F1 macro {a.target:.3f}. 'extrapolated': the estimate lies beyond twice the largest "
                     "measured size, where the fitted curve is a guess."),
               ("table", a.tables["fits"]),
               ("h2", "Back-test: how far to trust the curve"),
               ("p", "Each curve fitted on the smaller sizes only, predicting the largest measured size."),
               ("table", a.tables["back_test"])]
    if "paper" in a.tables:
        blocks += [("h2", "Beside the paper (Laurer et al. 2023)"),
                   ("p", "The paper's F1 macro (mean of 3 seeds, its models and hyper-parameter search) beside ours: "
                         "measured where we ran that size, else our fitted curve's value there."),
                   ("table", a.tables["paper"])]
    blocks.append(("h2", f"Validity of the chosen approach: {APPROACH_NAMES[a.chosen]}"))
    if "groups" in a.tables:
        gap = a.gap
        blocks += [("p", f"F1 macro per group of {data.group_column!r}: best {gap['best']}, worst {gap['worst']}, gap "
                         f"{fmt(gap['gap'])} ({gap['among']})."),
                   ("table", a.tables["groups"]), ("img", "groups.png", figures["groups.png"])]
    blocks += [("warn", note) for note in a.notes]
    blocks += [("p", "Confusion table (test rows, the seeds' models added up):"), ("table", a.tables["confusion"]),
               ("table", a.tables["per_class"]),
               ("h2", "Methods"), ("p", methods_text),
               ("h2", "The grid"), ("pre", grid_text),
               ("h2", "Replication"),
               ("p", "replication/ holds the task file, the SHA-256 of each data file, the split indices, the seeds, "
                     "the library versions and the command. Replicating checks the task file and the data against "
                     "it, reruns every cell into a fresh folder and compares every table but the timing columns: "
                     f"equal in ci and cpu modes, within {REPLICATION_TOLERANCE['gpu']:g} on a GPU (its kernels and "
                     "mixed precision are not bit-for-bit reproducible). Reproduce the tables with:"),
               ("pre", command)]
    return blocks


def grid_summary(cells: list, sizes_by_approach: dict[str, list[int]], seeds: list[int]) -> str:
    """The grid as a few lines: approach, sizes, seeds, cells."""
    lines = []
    for approach, sizes in sizes_by_approach.items():
        n = sum(1 for c in cells if c.approach == approach)
        lines.append(f"{APPROACH_NAMES[approach]:45s} sizes {_list(sizes):30s} seeds "
                     f"{_list(seeds if sizes != [0] else seeds[:1]):10s} {n} cell(s)")
    lines.append(f"{len(cells)} cells in all")
    return "\n".join(lines)
