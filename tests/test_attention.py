"""utils/attention.py draws one head, and the facts notebook 2's attention section relies on hold.

The notebook computes one BERT head by hand (softmax(QK^T / sqrt(d)) V from the layer's query, key and
value weights) and asserts it equals the model's; it loads the encoder with attn_implementation="eager"
because the default (SDPA) hands back no attention weights. Both are checked here on a tiny random BERT
(no download), so a transformers upgrade that changes either shows up here first.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from utils.attention import plot_attention  # noqa: E402

TOKENS = ["[CLS]", "paris", "is", "nice", "[SEP]"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def weights(n: int = len(TOKENS)) -> np.ndarray:
    scores = np.random.default_rng(0).normal(size=(n, n))
    return np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)


def test_heat_map_has_the_tokens_on_both_axes_and_a_number_per_square():
    ax = plot_attention(torch.tensor(weights()), TOKENS, title="layer 1, head 0")
    assert [t.get_text() for t in ax.get_xticklabels()] == TOKENS
    assert [t.get_text() for t in ax.get_yticklabels()] == TOKENS
    assert len(ax.texts) == len(TOKENS) ** 2
    assert ax.texts[1].get_text() == f"{weights()[0, 1]:.2f}"  # row 0 (the token that looks), column 1
    assert ax.get_title() == "layer 1, head 0"
    assert ax.images[0].get_clim() == (0.0, 1.0)  # one scale for every head: weights lie in [0, 1]
    assert len(ax.figure.axes) == 2  # the heat map and its colour bar


def test_small_multiples_without_numbers_or_colour_bar():
    _, axes = plt.subplots(1, 2)
    for ax in axes:
        assert plot_attention(weights(), TOKENS, ax=ax, numbers=False, colorbar=False) is ax
        assert len(ax.texts) == 0
    assert len(axes[0].figure.axes) == 2


def test_long_sentences_leave_out_the_numbers_by_default():
    tokens = [f"t{i}" for i in range(20)]
    assert len(plot_attention(weights(20), tokens).texts) == 0


@pytest.mark.parametrize("matrix, tokens, message", [
    (np.ones((2, 3, 3)) / 3, TOKENS[:3], "square"),
    (np.ones((3, 4)) / 4, TOKENS[:3], "square"),
    (weights(), TOKENS[:4], "4 token"),
])
def test_wrong_shapes_say_what_is_expected(matrix, tokens, message):
    with pytest.raises(ValueError, match=message):
        plot_attention(matrix, tokens)


@pytest.fixture
def eager_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=32, max_position_embeddings=32)
    config._attn_implementation = "eager"
    return BertModel(config).eval()


@pytest.mark.parametrize("layer, head", [(0, 0), (1, 3)])
def test_the_notebooks_head_by_hand_equals_the_model(eager_bert, layer, head):
    model, ids = eager_bert, torch.tensor([[2, 17, 5, 41, 9, 3]])
    attention = model.encoder.layer[layer].attention.self
    captured = {}
    hook = attention.register_forward_hook(lambda module, args, output: captured.update(output=output[0]))
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True, output_hidden_states=True)
    hook.remove()

    x = out.hidden_states[layer][0]  # the layer's input
    n_tokens, n_heads = x.shape[0], model.config.num_attention_heads
    d = model.config.hidden_size // n_heads

    def one_head(linear):
        return (x @ linear.weight.T + linear.bias).view(n_tokens, n_heads, d)[:, head]

    with torch.no_grad():
        q, k, v = one_head(attention.query), one_head(attention.key), one_head(attention.value)
        by_hand = torch.softmax(q @ k.T / d**0.5, dim=-1)
        output = by_hand @ v
    assert torch.allclose(by_hand, out.attentions[layer][0, head], atol=1e-5)
    assert torch.allclose(output, captured["output"][0].view(n_tokens, n_heads, d)[:, head], atol=1e-5)
    assert torch.allclose(by_hand.sum(dim=-1), torch.ones(n_tokens))


def test_sdpa_hands_back_no_attention_weights_so_the_notebook_loads_eager(eager_bert):
    """If this fails, transformers now returns weights with SDPA: update notebook 2's prose on `eager`."""
    eager_bert.set_attn_implementation("sdpa")
    with torch.no_grad():
        out = eager_bert(input_ids=torch.tensor([[2, 17, 5, 3]]), output_attentions=True)
    assert not out.attentions  # None or an empty tuple
    eager_bert.set_attn_implementation("eager")
    with torch.no_grad():
        out = eager_bert(input_ids=torch.tensor([[2, 17, 5, 3]]), output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (1, 4, 4, 4)
