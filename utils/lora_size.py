"""How big a LoRA adapter is, counted from a Llama-style model's architecture (no weights needed).

The slides' LoRA figure uses these counts for notebook 7's gpu model, SmolLM2-1.7B, with notebook 7's
LoRA settings; tests/test_lora_size.py checks the arithmetic against peft on real (tiny and
meta-device) models. A LoRA pair on a linear layer with `in` inputs and `out` outputs adds
A (r x in) and B (out x r): r * (in + out) trainable numbers, next to the layer's in * out frozen ones.
"""

from __future__ import annotations

from dataclasses import dataclass

# Notebook 7's LoRA settings (LORA_R, LORA_TARGET_MODULES): a test checks its settings cell agrees.
LORA_R = 16
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LlamaShape:
    """The sizes that fix a Llama-style decoder's parameter count."""

    name: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool = True  # the output layer reuses the input embeddings

    @classmethod
    def from_config(cls, config, name: str = "model") -> "LlamaShape":
        """The shape of a transformers LlamaConfig (or any config with the same attribute names)."""
        return cls(name, config.hidden_size, config.intermediate_size, config.num_hidden_layers,
                   config.num_attention_heads, config.num_key_value_heads, config.vocab_size,
                   bool(config.tie_word_embeddings))

    @property
    def head_dim(self) -> int:
        """Numbers per attention head: the hidden size divided by the heads."""
        if self.hidden % self.heads:
            raise ValueError(f"{self.name}: hidden size {self.hidden} is not a multiple of {self.heads} heads.")
        return self.hidden // self.heads


# SmolLM2-1.7B(-Instruct), notebook 7's gpu model: the sizes in its config.json on the Hub.
SMOLLM2_1_7B = LlamaShape("SmolLM2-1.7B", hidden=2048, intermediate=8192, layers=24, heads=32, kv_heads=32,
                          vocab=49152, tied_embeddings=True)


def projection_shapes(shape: LlamaShape) -> dict[str, tuple[int, int]]:
    """(in, out) of each linear layer in one decoder layer, by its name in transformers' Llama code."""
    kv = shape.kv_heads * shape.head_dim  # grouped-query attention: fewer key/value heads, narrower k and v
    return {
        "q_proj": (shape.hidden, shape.hidden), "k_proj": (shape.hidden, kv), "v_proj": (shape.hidden, kv),
        "o_proj": (shape.hidden, shape.hidden), "gate_proj": (shape.hidden, shape.intermediate),
        "up_proj": (shape.hidden, shape.intermediate), "down_proj": (shape.intermediate, shape.hidden),
    }


def base_parameters(shape: LlamaShape) -> int:
    """All parameters of the model: embeddings, every layer's linear layers and norms, the output layer."""
    per_layer = sum(i * o for i, o in projection_shapes(shape).values()) + 2 * shape.hidden  # two RMSNorms
    embeddings = shape.vocab * shape.hidden
    output = 0 if shape.tied_embeddings else shape.vocab * shape.hidden
    return embeddings + shape.layers * per_layer + shape.hidden + output  # + the final norm


def lora_parameters(shape: LlamaShape, r: int = LORA_R, targets: tuple[str, ...] = LORA_TARGETS) -> int:
    """Trainable parameters of a LoRA adapter of rank `r` on the `targets` of every layer."""
    if not isinstance(r, int) or r <= 0:
        raise ValueError(f"The LoRA rank r must be a positive whole number, got {r!r}.")
    shapes = projection_shapes(shape)
    unknown = sorted(set(targets) - set(shapes))
    if unknown:
        raise ValueError(f"No linear layer named {unknown} in a Llama layer; the names are {list(shapes)}.")
    return shape.layers * sum(r * (shapes[t][0] + shapes[t][1]) for t in targets)


def megabytes(parameters: int, bytes_per_parameter: int = 4) -> float:
    """Size on disk in MB (10^6 bytes), 4 bytes per number in float32 (peft trains and saves LoRA in float32)."""
    return parameters * bytes_per_parameter / 1e6


def adapter_summary(shape: LlamaShape = SMOLLM2_1_7B, r: int = LORA_R,
                    targets: tuple[str, ...] = LORA_TARGETS) -> dict[str, float]:
    """The figures the slides show: base and adapter parameters, the share that trains, sizes in MB."""
    base, lora = base_parameters(shape), lora_parameters(shape, r, targets)
    return {"base parameters": base, "LoRA parameters": lora, "trainable share (%)": 100 * lora / (base + lora),
            "adapter MB (float32)": megabytes(lora, 4), "base model MB (bfloat16)": megabytes(base, 2)}
