"""The real path's loading defects, checked against the hub-shaped fixture (tests/hub_fixture.py).

The ci stand-ins (an fp32 MiniLM with a tokenizer.json) hid two defects that stop notebooks 3
and 4 with the real hub repos: microsoft/deberta-v3-* ship only `spm.model`, whose conversion to
a fast tokenizer needs protobuf; and they store float16 weights with no dtype in their config,
so transformers 5 (`dtype="auto"`) loads them as float16, which the Trainer's fp16 grad scaler
refuses on a GPU. Each check runs in a subprocess, because HF_HOME must be set before the Hugging
Face libraries are imported.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

# The real gpu/cpu code paths against the hub fixture, like the gpu/cpu-setting notebook runs: the full tier.
pytestmark = pytest.mark.full

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def hub_env() -> dict[str, str]:
    import hub_fixture  # tests/hub_fixture.py

    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
    env.update(hub_fixture.build(ROOT / "build" / "hub-fixture"))
    env["COURSE_MODE"] = "cpu"
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_in_fixture(env: dict[str, str], code: str) -> dict:
    """Run `code` in a fresh Python with the fixture's environment; it prints one JSON line last."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_deberta_v3_tokenizer_loads_from_spm_model_alone(hub_env):
    facts = run_in_fixture(hub_env, """
        import json
        from huggingface_hub import try_to_load_from_cache
        from transformers import AutoTokenizer
        name = "microsoft/deberta-v3-base"
        has_tokenizer_json = isinstance(try_to_load_from_cache(name, "tokenizer.json"), str)
        tokenizer = AutoTokenizer.from_pretrained(name)  # converts spm.model: needs protobuf
        tokens = tokenizer.tokenize("The government will modernise the armed forces.")
        print(json.dumps({"has_tokenizer_json": has_tokenizer_json, "fast": tokenizer.is_fast, "tokens": tokens,
                          "cls": tokenizer.cls_token, "mask": tokenizer.mask_token}))
    """)
    assert not facts["has_tokenizer_json"], "the fixture must copy the real layout: spm.model only"
    assert facts["fast"] and facts["tokens"]
    assert (facts["cls"], facts["mask"]) == ("[CLS]", "[MASK]")


def test_plain_from_pretrained_returns_the_stored_float16(hub_env):
    # The trap itself: transformers 5 keeps a checkpoint's stored dtype. If this ever loads float32,
    # the library changed and the notebooks' explicit dtype is merely redundant.
    facts = run_in_fixture(hub_env, """
        import json
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained("microsoft/deberta-v3-xsmall", num_labels=3)
        print(json.dumps({"dtype": str(model.dtype)}))
    """)
    assert facts["dtype"] == "torch.float16"


def test_notebook_3_and_4_loaders_give_float32_and_the_check_refuses_float16(hub_env):
    facts = run_in_fixture(hub_env, """
        import json, torch
        from transformers import AutoModelForSequenceClassification
        import utils
        out = {}
        # Notebook 3's call in fine_tune (keep in step with the notebook; the notebook runs check it too).
        model = AutoModelForSequenceClassification.from_pretrained(
            "microsoft/deberta-v3-base", num_labels=len(utils.LABELS), id2label=utils.ID2LABEL,
            label2id=utils.LABEL2ID, dtype=torch.float32)
        utils.check_trainable_dtype(model)
        out["nb3"] = str(model.dtype)
        # Notebook 4's loader, for an NLI checkpoint and for a plain encoder that gets a fresh NLI head.
        out["nb4_nli"] = str(utils.load_nli_model("MoritzLaurer/deberta-v3-base-zeroshot-v2.0").dtype)
        out["nb4_plain"] = str(utils.load_nli_model("microsoft/deberta-v3-xsmall").dtype)
        half = AutoModelForSequenceClassification.from_pretrained("microsoft/deberta-v3-base", num_labels=3)
        try:
            utils.check_trainable_dtype(half)
            out["refused"] = None
        except ValueError as error:
            out["refused"] = str(error)
        print(json.dumps(out))
    """)
    assert (facts["nb3"], facts["nb4_nli"], facts["nb4_plain"]) == ("torch.float32",) * 3
    assert facts["refused"] and "float16" in facts["refused"] and "dtype=torch.float32" in facts["refused"]


def test_lora_on_a_half_precision_base_passes_the_check(hub_env):
    # Notebook 7 loads its LLM in half precision on a GPU; only the LoRA matrices train, in float32.
    facts = run_in_fixture(hub_env, """
        import json, torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM
        import utils
        model = AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct", dtype=torch.float16)
        peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        utils.check_trainable_dtype(peft_model)
        trainable = {str(p.dtype) for p in peft_model.parameters() if p.requires_grad}
        print(json.dumps({"base": str(model.get_input_embeddings().weight.dtype), "trainable": sorted(trainable)}))
    """)
    assert facts == {"base": "torch.float16", "trainable": ["torch.float32"]}


@pytest.mark.gpu
def test_trainer_fp16_refuses_float16_master_weights_on_a_gpu(hub_env):
    """The failure the dtype fix prevents, as a student on a T4 would meet it (needs CUDA)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    facts = run_in_fixture(hub_env, """
        import json, torch
        from datasets import Dataset
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments
        name = "microsoft/deberta-v3-xsmall"
        tokenizer = AutoTokenizer.from_pretrained(name)
        data = Dataset.from_dict({"text": ["a quote"] * 8, "label": [0, 1] * 4}).map(
            lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
        out = {}
        for dtype in (None, torch.float32):
            kwargs = {} if dtype is None else {"dtype": dtype}
            model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=2, **kwargs)
            args = TrainingArguments("/tmp/fp16-check", max_steps=2, per_device_train_batch_size=4, fp16=True,
                                     report_to="none", save_strategy="no")
            try:
                Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer).train()
                out[str(dtype)] = "trained"
            except ValueError as error:
                out[str(dtype)] = str(error)
        print(json.dumps(out))
    """)
    assert "unscale FP16 gradients" in facts["None"]
    assert facts["torch.float32"] == "trained"
