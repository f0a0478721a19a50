"""Plot helpers for notebook 2's attention section (the arithmetic itself is in the notebook).

    from utils.attention import plot_attention
    plot_attention(weights, tokens, title="Layer 1, head 0")   # weights: (tokens, tokens), rows sum to 1
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def plot_attention(weights, tokens: Sequence[str], title: str = "", ax=None, numbers: bool | None = None,
                   colorbar: bool = True):
    """Heat map of one attention head: row i shows how token i spreads its attention over the tokens.

    `weights` is a (tokens, tokens) matrix (a torch tensor or an array), `tokens` the token strings.
    Rows are the tokens that look (queries), columns the tokens looked at (keys); each row sums to 1.
    `numbers` writes each weight into its square (default: for sentences of up to 16 tokens);
    `colorbar=False` leaves out the colour scale (for a grid of small heat maps, all on the 0-1 scale).
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    matrix = weights.detach().float().cpu().numpy() if hasattr(weights, "detach") else np.asarray(weights, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"Expected a square (tokens, tokens) matrix of one head, got the shape {matrix.shape}.")
    if len(tokens) != matrix.shape[0]:
        raise ValueError(f"{len(tokens)} token(s) for a matrix of {matrix.shape[0]} rows: pass the tokens of "
                         "the same sentence the weights came from.")
    if ax is None:
        size = 1.5 + 0.45 * len(tokens)
        _, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("looked at (key)")
    ax.set_ylabel("looking (query)")
    if numbers is None:
        numbers = len(tokens) <= 16
    if numbers:
        for (row, col), value in np.ndenumerate(matrix):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.5 else "white")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="attention weight", fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return ax
