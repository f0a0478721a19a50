"""utils.lora_size: the LoRA arithmetic behind the slides, checked against peft on real models."""

import json
import pathlib

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from utils import lora_size

ROOT = pathlib.Path(__file__).resolve().parent.parent


def llama(shape: lora_size.LlamaShape) -> LlamaConfig:
    return LlamaConfig(hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                       num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                       num_key_value_heads=shape.kv_heads, vocab_size=shape.vocab,
                       tie_word_embeddings=shape.tied_embeddings)


def peft_counts(config: LlamaConfig, r: int, targets) -> tuple[int, int]:
    """(all parameters of the base model, trainable LoRA parameters) as peft counts them, on the meta
    device: the model has the real shapes but no memory behind them, so even 1.7 B builds in seconds."""
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    base = sum(p.numel() for p in model.parameters())
    peft_model = get_peft_model(model, LoraConfig(r=r, target_modules=list(targets), task_type="CAUSAL_LM"))
    return base, sum(p.numel() for p in peft_model.parameters() if p.requires_grad)


# A tiny model with grouped-query attention (fewer key/value heads) and untied output embeddings,
# so every branch of the arithmetic is exercised.
TINY = lora_size.LlamaShape("tiny", hidden=64, intermediate=160, layers=3, heads=8, kv_heads=2, vocab=500,
                            tied_embeddings=False)


@pytest.mark.parametrize("r, targets", [(4, lora_size.LORA_TARGETS), (8, ("q_proj", "v_proj")), (16, ("down_proj",))])
def test_counts_match_peft_on_a_tiny_model(r, targets):
    base, trainable = peft_counts(llama(TINY), r, targets)
    assert lora_size.base_parameters(TINY) == base
    assert lora_size.lora_parameters(TINY, r, targets) == trainable


def test_smollm2_1_7b_with_notebook_7s_settings_matches_peft_and_the_published_size():
    base, trainable = peft_counts(llama(lora_size.SMOLLM2_1_7B), lora_size.LORA_R, lora_size.LORA_TARGETS)
    summary = lora_size.adapter_summary()
    assert summary["base parameters"] == base
    assert summary["LoRA parameters"] == trainable
    assert round(base / 1e9, 2) == 1.71  # the "1.7B" in the model's name
    # What the slide says, from the counts: about 18 M trainable (about 1 %), about 70 MB in float32.
    assert 17e6 < trainable < 19e6 and 0.9 < summary["trainable share (%)"] < 1.2
    assert 65 < summary["adapter MB (float32)"] < 80


def test_the_settings_agree_with_notebook_7():
    nb = json.loads((ROOT / "notebooks" / "7_tune_generative_llm.ipynb").read_text(encoding="utf-8"))
    settings = next("".join(c["source"]) for c in nb["cells"] if "utils.settings(" in "".join(c["source"]))
    assert f"LORA_R={lora_size.LORA_R}," in settings
    assert f"LORA_TARGET_MODULES={list(lora_size.LORA_TARGETS)}".replace("'", '"') in settings
    assert 'gpu="HuggingFaceTB/SmolLM2-1.7B-Instruct"' in settings


def test_bad_ranks_and_targets_are_explained():
    with pytest.raises(ValueError, match="positive whole number"):
        lora_size.lora_parameters(TINY, 0)
    with pytest.raises(ValueError, match=r"No linear layer named \['qkv'\]"):
        lora_size.lora_parameters(TINY, 4, ("qkv",))
