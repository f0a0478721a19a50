"""Draw the deck's figures into slides/figures/ (generated, git-ignored).

    python slides/make_figures.py                          # the class's plot from build/class-results/
    python slides/make_figures.py --class-results none     # the placeholder (the committed PDF uses it)

Every figure is computed or drawn, never copied in: figures_model.py runs the course's offline
stand-in models (tokens, attention, "capital" similarities), figures_results.py draws the paper's
figures (data/paper_reference.csv), the NLI pairs, the LoRA sizes and the class's results.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
FIGURES = HERE / "figures"
CLASS_RESULTS = HERE.parent / "build" / "class-results"  # where `make class-results` writes

import figures_model  # noqa: E402  (slides/ is on sys.path when this file runs)
import figures_results  # noqa: E402


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


def main(argv: list[str] | None = None) -> None:
    """Draw every figure of the deck into slides/figures/."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--class-results", default=str(CLASS_RESULTS),
                        help="folder with class_results.png from utils.class_results, or 'none' for the placeholder")
    args = parser.parse_args(argv)
    class_dir = None if args.class_results == "none" else pathlib.Path(args.class_results)
    FIGURES.mkdir(exist_ok=True)
    colab_badge()
    transfer_learning()
    figures_model.capital_similarity(FIGURES)
    figures_model.tokens(FIGURES)
    figures_model.attention(FIGURES)
    figures_results.paper_comparison(FIGURES)
    figures_results.learning_curve(FIGURES)
    figures_results.course_comparison(FIGURES)
    figures_results.nli_pairs(FIGURES)
    figures_results.lora(FIGURES)
    figures_results.class_results(FIGURES, class_dir)
    print(f"figures written to {FIGURES}")


if __name__ == "__main__":
    main()
