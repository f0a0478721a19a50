"""The code that only does something on a CUDA GPU: gpu_info, peak_gpu_memory_gib, the CUDA branch
of free_memory, and label scoring in half precision (float16 on a T4, bfloat16 from Ampere on).

Every test here is marked `gpu`: it runs wherever a CUDA GPU is; on a machine without one it is
not run, and the terminal summary lists it as "not run: no CUDA GPU" (tests/conftest.py), which
CI allows. The CPU behaviour of the same functions is tested in test_device.py.
"""

import numpy as np
import pytest
import torch

import utils
from utils import modes
from utils.llm import label_log_likelihoods

from test_llm import QUOTES  # eight quotes of eight different prompt lengths, as in the CPU scoring test

pytestmark = pytest.mark.gpu

MIB = 2**20


def test_gpu_info_and_precision_describe_the_device():
    info = utils.gpu_info()
    props = torch.cuda.get_device_properties(0)
    major, minor = torch.cuda.get_device_capability(0)
    assert info == {"name": torch.cuda.get_device_name(0), "memory_gib": round(props.total_memory / 2**30, 1),
                    "compute_capability": f"{major}.{minor}"}
    assert info["memory_gib"] > 1
    assert utils.device() == "cuda"
    assert utils.mixed_precision() == ("bf16" if major >= 8 else "fp16")
    assert utils.inference_dtype() is (torch.bfloat16 if major >= 8 else torch.float16)
    assert utils.warn_if_no_gpu(force=True) is True


def test_peak_memory_counts_a_tensor_and_free_memory_gives_it_back():
    utils.free_memory()  # empties the cache and restarts the peak count
    base = torch.cuda.memory_allocated()
    assert torch.cuda.max_memory_allocated() == base
    block = torch.empty(256 * MIB, dtype=torch.uint8, device="cuda")
    reserved_with_block = torch.cuda.memory_reserved()
    peak = utils.peak_gpu_memory_gib()
    assert peak == round(torch.cuda.max_memory_allocated() / 2**30, 2) and peak >= round((base + 256 * MIB) / 2**30, 2)

    del block
    assert utils.free_memory() is None
    assert torch.cuda.memory_allocated() == base
    assert torch.cuda.max_memory_allocated() == base  # the peak was reset
    assert torch.cuda.memory_reserved() <= reserved_with_block - 256 * MIB  # the cached block went back to the GPU
    assert utils.peak_gpu_memory_gib() == round(base / 2**30, 2)


# ---------------------------------------------------------------- scoring in half precision

# Largest differences from float32 allowed, in log-likelihood and in probability. Measured on a CPU
# with these prompts: bfloat16 0.40 and 0.031, float16 0.05 and 0.002; the limits leave room for
# other kernels while a wrong position or a broken mask (several nats) still fails.
TOLERANCE = {torch.float16: (0.25, 0.02), torch.bfloat16: (1.0, 0.1)}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(modes.llm_stand_in())


@pytest.fixture(scope="module")
def messages():
    import pandas as pd

    rows = pd.DataFrame({"text_preceding": "", "text_original": QUOTES, "text_following": ""})
    return utils.messages_for(rows)


def on_gpu(dtype):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(modes.llm_stand_in(), dtype=dtype).to("cuda")


@pytest.fixture(scope="module")
def float32_scores(tokenizer, messages):
    model = on_gpu(torch.float32)
    scores = label_log_likelihoods(model, tokenizer, messages, batch_size=8, progress=False)
    alone = np.vstack([label_log_likelihoods(model, tokenizer, [m], batch_size=1, share_prefix=False, progress=False)
                       for m in messages])
    np.testing.assert_allclose(scores, alone, atol=1e-3, rtol=0)  # the shared, padded batch on CUDA
    del model
    utils.free_memory()
    return scores


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision_scores_are_finite_and_close_to_float32(tokenizer, messages, float32_scores, dtype):
    model = on_gpu(dtype)
    shared = label_log_likelihoods(model, tokenizer, messages, batch_size=8, progress=False)
    alone = np.vstack([label_log_likelihoods(model, tokenizer, [m], batch_size=1, share_prefix=False, progress=False)
                       for m in messages])
    log_limit, prob_limit = TOLERANCE[dtype]
    for scores in (shared, alone):
        assert scores.dtype == np.float32 and np.isfinite(scores).all()  # no overflow: it would raise anyway
        np.testing.assert_allclose(scores, float32_scores, atol=log_limit, rtol=0)
        np.testing.assert_allclose(np.exp(scores), np.exp(float32_scores), atol=prob_limit, rtol=0)
    assert (shared.argmax(axis=1) == float32_scores.argmax(axis=1)).sum() >= 6  # near-ties may flip, not more
    del model
    utils.free_memory()
