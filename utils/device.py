"""Which hardware the notebook runs on, and the precision to train in."""

from __future__ import annotations

import gc
import sys
import warnings

import torch

NO_GPU_MESSAGE = (
    "No GPU found: this notebook will run on the CPU, slowly, with small models and samples.\n"
    "On Colab: Runtime > Change runtime type > Hardware accelerator: T4 GPU > Save, then run all "
    "cells again.\nOn a laptop: nothing to do, cpu mode is chosen for you."
)


def device() -> str:
    """Return the torch device name to use: "cuda", "mps" (Apple silicon) or "cpu"."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def gpu_info() -> dict:
    """Name, memory (GiB) and compute capability of the CUDA GPU; an empty dict without one."""
    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    return {
        "name": props.name,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "compute_capability": f"{props.major}.{props.minor}",
    }


def mixed_precision() -> str | None:
    """The mixed precision to train in: "bf16", "fp16" or None (full fp32).

    bf16 only from compute capability 8.0 (Ampere) on. We do not trust
    torch.cuda.is_bf16_supported(): it answers True on a T4 (7.5), where bf16 is only
    emulated and slow. Below 8.0 (T4, V100) we use fp16; on CPU and MPS none.
    """
    from .preflight import mixed_precision as choose  # one rule for the header's preflight and the Trainer

    return choose()


def precision_args() -> dict:
    """Keyword arguments for TrainingArguments that switch on the right mixed precision."""
    precision = mixed_precision()
    return {"fp16": precision == "fp16", "bf16": precision == "bf16"}


def inference_dtype() -> torch.dtype:
    """dtype to load a model in for inference: half precision on a GPU, fp32 elsewhere."""
    precision = mixed_precision()
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    return torch.float32


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def warn_if_no_gpu(force: bool = False) -> bool:
    """Warn, with the fix, when Colab (or `force`) expects a GPU and there is none.

    Returns True when a CUDA GPU is present. The notebook still runs without one.
    """
    if torch.cuda.is_available():
        return True
    if force or in_colab():
        warnings.warn(NO_GPU_MESSAGE, stacklevel=2)
    return False


def free_memory(*objects: object) -> None:
    """Drop references the caller passes in scope, collect garbage and empty the GPU cache.

    Call as `free_memory()` after `del model, trainer` to give a Colab GPU its memory back.
    """
    del objects
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gpu_memory_gib() -> float | None:
    """Peak GPU memory allocated by torch since the last reset, in GiB (None without a GPU)."""
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def check_trainable_dtype(model: torch.nn.Module) -> None:
    """Stop with a clear message when the weights about to be trained are not float32.

    transformers 5 loads a checkpoint in the dtype it was stored in (`dtype="auto"`), and some
    are stored in float16 (microsoft/deberta-v3-*, ~2 bytes per parameter). Trained as they are,
    the Trainer's fp16 grad scaler refuses them on a GPU ("Attempting to unscale FP16
    gradients"), and on a CPU the updates are too coarse to learn. Mixed precision keeps float32
    weights and only computes in fp16/bf16: the Trainer does that with `precision_args()`.
    Only trainable weights count, so a LoRA model with a half-precision base passes.
    """
    half = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()
                   if p.requires_grad and p.dtype != torch.float32})
    if half:
        raise ValueError(
            f"The weights to train are {', '.join(half)}, not float32: the checkpoint was stored in half "
            "precision and loaded as stored. Load the model with `dtype=torch.float32` (e.g. "
            "`AutoModelForSequenceClassification.from_pretrained(name, dtype=torch.float32)`); mixed "
            "precision on the GPU comes from the Trainer (utils.precision_args())."
        )
