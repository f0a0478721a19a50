"""Draw the deck's figures into slides/figures/ (generated, git-ignored).

Every figure is computed or drawn here: the "capital" similarities come from a real pre-trained
encoder (all-MiniLM-L6-v2, installed offline by `make setup`), the bar chart from the figures
Laurer et al. (2023) report.
"""

from __future__ import annotations

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
FIGURES = HERE / "figures"


def transfer_learning() -> None:
    """Two boxes and an arrow: what pre-training and fine-tuning each put into the model."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.set_axis_off()
    boxes = [
        (0.02, "Pre-training", "billions of words, no labels\npredict hidden words\n\n= language knowledge",
         "tab:blue"),
        (0.52, "Fine-tuning", "hundreds of labelled examples\npredict your labels\n\n= task knowledge", "tab:orange"),
    ]
    for x, title, body, colour in boxes:
        ax.add_patch(plt.Rectangle((x, 0.08), 0.42, 0.84, facecolor=colour, alpha=0.15, edgecolor=colour, lw=2))
        ax.text(x + 0.21, 0.78, title, ha="center", va="center", fontsize=16, weight="bold")
        ax.text(x + 0.21, 0.42, body, ha="center", va="center", fontsize=12)
    ax.annotate("", xy=(0.52, 0.5), xytext=(0.44, 0.5), arrowprops={"arrowstyle": "->", "lw": 3})
    fig.savefig(FIGURES / "transfer_learning.png", dpi=150, bbox_inches="tight")
    plt.close(fig)


CAPITAL_SENTENCES = {
    "city": ["Paris is the capital of France.", "Berlin became the capital of Germany again in 1990."],
    "money": ["The start-up raised fresh capital from investors.", "Banks must hold more capital against risky loans."],
    "crime": ["Murder was a capital offence under the old law.", "The court abolished capital punishment."],
}


def capital_similarity() -> None:
    """Cosine similarity of the word "capital" in six sentences, from a real pre-trained encoder."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from utils.modes import encoder_stand_in

    path = encoder_stand_in()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    capital_id = tokenizer.convert_tokens_to_ids("capital")
    sentences = [s for group in CAPITAL_SENTENCES.values() for s in group]
    vectors = []
    for sentence in sentences:
        batch = tokenizer(sentence, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state[0]
        position = batch["input_ids"][0].tolist().index(capital_id)
        vectors.append(torch.nn.functional.normalize(hidden[position], dim=0))
    similarity = torch.stack(vectors) @ torch.stack(vectors).T
    labels = [f"{group}: {s[:28]}…" for group, group_sentences in CAPITAL_SENTENCES.items() for s in group_sentences]
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    image = ax.imshow(similarity.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), [label.split(":")[0] for label in labels])
    ax.set_yticks(range(len(labels)), labels, fontsize=9)
    for i, j in np.ndindex(similarity.shape):
        ax.text(j, i, f"{similarity[i, j]:.2f}", ha="center", va="center", fontsize=9)
    ax.set_title('"capital": one word, three meanings (all-MiniLM-L6-v2, last layer)')
    fig.colorbar(image, ax=ax, label="cosine similarity")
    fig.savefig(FIGURES / "capital_similarity.png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def paper_result() -> None:
    """F1 macro on the course data set as reported by Laurer et al. (2023)."""
    approaches = ["BERT-NLI\nzero-shot (n = 0)", "DeBERTa-v3-base\n(n = 1000)", "DeBERTa-v3-NLI\n(n = 1000)"]
    f1_macro = [0.592, 0.670, 0.725]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(approaches, f1_macro, color=["tab:grey", "tab:blue", "tab:orange"])
    ax.bar_label(bars, fmt="%.3f")
    ax.set(ylim=(0, 1), ylabel="F1 macro",
           title="Manifesto military stance: Laurer et al. 2023, Political Analysis")
    fig.savefig(FIGURES / "paper_result.png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def lora() -> None:
    """The LoRA idea: a frozen big matrix W plus a trainable low-rank product B·A."""
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.set_axis_off()
    ax.add_patch(plt.Rectangle((0.02, 0.1), 0.3, 0.8, facecolor="tab:grey", alpha=0.3))
    ax.text(0.17, 0.5, "W\nfrozen\nd × d", ha="center", va="center", fontsize=14)
    ax.text(0.37, 0.5, "+", fontsize=28, ha="center", va="center")
    ax.add_patch(plt.Rectangle((0.44, 0.1), 0.05, 0.8, facecolor="tab:orange", alpha=0.6))
    ax.text(0.465, 0.02, "B: d × r", ha="center", fontsize=10)
    ax.add_patch(plt.Rectangle((0.53, 0.8), 0.3, 0.1, facecolor="tab:orange", alpha=0.6))
    ax.text(0.68, 0.68, "A: r × d", ha="center", fontsize=10)
    ax.text(0.68, 0.35, "trained: 2·d·r numbers\ninstead of d·d", ha="center", fontsize=12)
    fig.savefig(FIGURES / "lora.png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def colab_badge() -> None:
    """A small "Open in Colab" button of our own, so the deck needs no image from the web."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="118" height="20" role="img" aria-label="Open in Colab">'
        '<rect width="118" height="20" rx="3" fill="#444"/><rect x="72" width="46" height="20" rx="3" fill="#f9ab00"/>'
        '<rect x="72" width="6" height="20" fill="#f9ab00"/>'
        '<g font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" fill="#fff">'
        '<text x="8" y="14">Open in</text><text x="78" y="14" fill="#222">Colab</text></g></svg>'
    )
    (FIGURES / "open_in_colab.svg").write_text(svg, encoding="utf-8")


def main() -> None:
    FIGURES.mkdir(exist_ok=True)
    colab_badge()
    transfer_learning()
    capital_similarity()
    paper_result()
    lora()
    print(f"figures written to {FIGURES}")


if __name__ == "__main__":
    main()
