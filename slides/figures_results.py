"""Figures drawn from the course's code and from published figures (each labelled with its source).

The paper's numbers come from data/paper_reference.csv (one row per figure, with its source); the
NLI pairs from utils.make_nli_pairs and the hypotheses of notebook 4; the LoRA counts from
utils.lora_size (SmolLM2-1.7B's architecture, notebook 7's settings); the class's results from
`python -m utils.class_results` when an instructor has run it.
"""

from __future__ import annotations

import pathlib
import shutil
import textwrap

import matplotlib.pyplot as plt
import pandas as pd

PAPER = "Laurer et al. 2023, Political Analysis"
COLOURS = {"classical (TF-IDF + logistic regression)": "tab:grey", "BERT fine-tuned": "tab:blue",
           "BERT-NLI zero-shot": "tab:green", "BERT-NLI fine-tuned": "tab:orange"}


def _reference() -> pd.DataFrame:
    from utils.class_results import read_reference

    return read_reference()


def paper_comparison(out: pathlib.Path) -> None:
    """The paper's F1 macro at 1000 examples per approach, and BERT-NLI zero-shot, as bars."""
    ref = _reference()
    rows = ref[(ref["n_train"] == 1000) | (ref["n_train"] == 0)]
    rows = rows.assign(order=rows["approach"].map(list(COLOURS).index)).sort_values("order")
    labels = [f"{a}\n(n = {n})" for a, n in zip(rows["approach"].str.replace(" (", "\n("), rows["n_train"])]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    bars = ax.bar(labels, rows["f1_macro"], color=[COLOURS[a] for a in rows["approach"]])
    ax.bar_label(bars, fmt="%.3f")
    ax.set(ylim=(0, 1), ylabel="F1 macro", title=f"Manifesto military stance: the paper's figures ({PAPER})")
    ax.tick_params(axis="x", labelsize=8)
    fig.savefig(out / "paper_result.png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def learning_curve(out: pathlib.Path) -> None:
    """F1 macro against training examples per approach, from the paper; zero-shot as a dashed line."""
    ref = _reference()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for approach, group in ref[ref["n_train"] > 0].groupby("approach", sort=False):
        group = group.sort_values("n_train")
        ax.plot(group["n_train"], group["f1_macro"], marker="o", color=COLOURS.get(approach), label=approach)
    for _, row in ref[ref["n_train"] == 0].iterrows():
        ax.axhline(row["f1_macro"], ls="--", color=COLOURS.get(row["approach"]),
                   label=f"{row['approach']} (no training examples)")
    sizes = sorted(ref.loc[ref["n_train"] > 0, "n_train"].unique())
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set(ylim=(0.3, 0.8), xlabel="training examples", ylabel="F1 macro (mean of 3 seeds)",
           title=f"How much labelled data? The paper's learning curves ({PAPER})")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.savefig(out / "learning_curve.png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def course_comparison(out: pathlib.Path) -> None:
    """Notebook 7's comparison plot (utils.plot_learning_curve), here filled with the paper's figures."""
    import utils

    ref = _reference()
    ax = utils.plot_learning_curve(ref[ref["n_train"] > 0],
                                   title="Notebook 7's comparison plot, drawn here with the paper's figures")
    ax.figure.set_size_inches(8, 4.2)
    ax.text(0.99, 0.03, f"source: {PAPER}; your notebook 7 adds the LLM from your own runs",
            transform=ax.transAxes, ha="right", fontsize=8, color="dimgrey")
    ax.figure.savefig(out / "course_comparison.png", dpi=150, bbox_inches="tight")
    plt.close(ax.figure)


def nli_pairs(out: pathlib.Path) -> None:
    """One labelled text becomes one premise-hypothesis pair per label (utils.make_nli_pairs)."""
    import utils

    text = pd.DataFrame({"text": ["We will buy new frigates for the navy."], "label_text": ["Military: Positive"]})
    pairs = utils.make_nli_pairs(text, utils.HYPOTHESES, entailment_id=0, not_entailment_id=1)
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.set_axis_off()
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.add_patch(plt.Rectangle((0.0, 0.3), 0.2, 0.4, facecolor="tab:blue", alpha=0.15, edgecolor="tab:blue"))
    ax.text(0.1, 0.5, f"{textwrap.fill(text['text'][0], 22)}\n\nlabel: {text['label_text'][0]}", ha="center",
            va="center", fontsize=10)
    ax.text(0.1, 0.76, "one labelled text", ha="center", fontsize=10, weight="bold")
    ax.text(0.6, 0.97, "three pairs: premise (the text) + one hypothesis per label", ha="center", fontsize=10,
            weight="bold")
    for k, (_, pair) in enumerate(pairs.iterrows()):
        y = 0.78 - k * 0.3
        entailed = pair["label"] == 0
        colour = "tab:green" if entailed else "tab:red"
        ax.annotate("", xy=(0.27, y), xytext=(0.2, 0.5), arrowprops={"arrowstyle": "->", "color": "grey"})
        ax.add_patch(plt.Rectangle((0.27, y - 0.11), 0.56, 0.22, facecolor=colour, alpha=0.12, edgecolor=colour))
        ax.text(0.28, y, textwrap.fill(pair["hypothesis"], 78), va="center", fontsize=8.5)
        ax.text(0.85, y, "entailment" if entailed else "not entailment", va="center", fontsize=10, color=colour,
                weight="bold")
    fig.savefig(out / "nli_pairs.png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def lora(out: pathlib.Path) -> None:
    """One attention matrix of SmolLM2-1.7B with its LoRA pair, and the whole adapter's real size."""
    from utils.lora_size import LORA_R, LORA_TARGETS, SMOLLM2_1_7B, adapter_summary, projection_shapes

    d_in, d_out = projection_shapes(SMOLLM2_1_7B)["q_proj"]
    r, summary = LORA_R, adapter_summary()
    thin = 0.035  # r is 16 of 2048: drawn to scale, A and B would be thinner than a line
    fig, ax = plt.subplots(figsize=(11, 3.8))
    ax.set_axis_off()
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.add_patch(plt.Rectangle((0.01, 0.1), 0.22, 0.75, facecolor="tab:grey", alpha=0.3))
    ax.text(0.12, 0.475, f"W (q_proj)\nfrozen\n{d_out} × {d_in}\n= {d_in * d_out:,} numbers", ha="center",
            va="center", fontsize=10)
    ax.text(0.26, 0.475, "+", fontsize=26, ha="center", va="center")
    ax.add_patch(plt.Rectangle((0.29, 0.1), thin, 0.75, facecolor="tab:orange", alpha=0.7))
    ax.text(0.29 + thin / 2, 0.02, f"B: {d_out} × {r}", ha="center", fontsize=9)
    ax.text(0.345, 0.8, "·", fontsize=26, ha="center", va="center")
    ax.add_patch(plt.Rectangle((0.36, 0.85 - thin * 2), 0.22, thin * 2, facecolor="tab:orange", alpha=0.7))
    ax.text(0.47, 0.88, f"A: {r} × {d_in}", ha="center", fontsize=9)
    ax.text(0.47, 0.45, f"B · A has the shape of W;\ntrained: {r * (d_in + d_out):,} numbers\n\n"
            "(A and B drawn wider\nthan to scale)", ha="center", va="center", fontsize=10)
    whole = (f"SmolLM2-1.7B, LoRA r = {r} on all {len(LORA_TARGETS)} projections\nof each of "
             f"{SMOLLM2_1_7B.layers} layers (notebook 7's settings):\n\n"
             f"frozen   {summary['base parameters'] / 1e9:.2f} billion parameters\n"
             f"trained  {summary['LoRA parameters'] / 1e6:.1f} million = {summary['trainable share (%)']:.2f} %\n\n"
             f"adapter file  {summary['adapter MB (float32)']:.0f} MB (float32)\n"
             f"base model    {summary['base model MB (bfloat16)'] / 1e3:.1f} GB (bfloat16)")
    ax.text(0.62, 0.475, whole, va="center", fontsize=10, family="monospace",
            bbox={"facecolor": "white", "edgecolor": "tab:orange"})
    fig.savefig(out / "lora.png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def class_results(out: pathlib.Path, class_dir: pathlib.Path | None) -> None:
    """The class's plot from utils.class_results when `class_dir` holds one, else a slide-sized note."""
    found = class_dir / "class_results.png" if class_dir else None
    if found is not None and found.exists():
        shutil.copyfile(found, out / "class_results.png")
        return
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.set_axis_off()
    ax.text(0.5, 0.5, "Your class's results appear here.\n\n1. Collect every student's results/results_log.csv\n"
            "2. make class-results LOGS=<folder>\n3. make slides", ha="center", va="center", fontsize=16,
            bbox={"facecolor": "whitesmoke", "edgecolor": "grey", "boxstyle": "round,pad=1"})
    fig.savefig(out / "class_results.png", dpi=150, bbox_inches="tight")
    plt.close(fig)
