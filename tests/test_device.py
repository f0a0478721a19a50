"""utils/device.py: device, precision and the no-GPU warning.

The unit tests run on machines without a GPU. Only test_precision_follows_compute_capability
fakes one, because no GPU exists here; everything else checks the real CPU behaviour.
"""

import gc
import importlib
import sys
import types
import warnings
import weakref

import pytest
import torch

import utils
dev = importlib.import_module("utils.device")  # utils.device is the device() function

WITHOUT_GPU = "checks the behaviour without a CUDA GPU"
has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def no_gpu(test):
    """Run `test` only on a machine without a CUDA GPU; on one with a GPU its skip is allowed, also
    under CI (tests/conftest.py), and test_gpu.py checks the GPU behaviour instead."""
    test = pytest.mark.skipif(torch.cuda.is_available(), reason=WITHOUT_GPU)(test)
    return pytest.mark.optional(reason=WITHOUT_GPU)(test)


@no_gpu
@pytest.mark.skipif(has_mps, reason="Apple silicon gives mps")
def test_device_is_cpu_without_gpu():
    assert utils.device() == "cpu"


@no_gpu
def test_no_mixed_precision_without_gpu():
    assert utils.mixed_precision() is None
    assert utils.precision_args() == {"fp16": False, "bf16": False}
    assert utils.inference_dtype() is torch.float32
    assert utils.gpu_info() == {}
    assert utils.peak_gpu_memory_gib() is None


@no_gpu
def test_warn_if_no_gpu_forced_gives_the_colab_fix():
    with pytest.warns(UserWarning) as record:
        assert utils.warn_if_no_gpu(force=True) is False
    message = str(record[0].message)
    assert message == dev.NO_GPU_MESSAGE
    assert "Runtime > Change runtime type > Hardware accelerator: T4 GPU" in message


@no_gpu
def test_no_warning_outside_colab_unless_forced(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert utils.warn_if_no_gpu() is False


@no_gpu
def test_colab_without_gpu_warns(monkeypatch):
    # in_colab() looks for the google.colab module, which only a Colab runtime has.
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert dev.in_colab()
    with pytest.warns(UserWarning, match="T4 GPU"):
        utils.warn_if_no_gpu()


def test_free_memory_collects_garbage():
    class Node:
        pass

    node = Node()
    node.self = node  # a reference cycle: only the garbage collector frees it
    alive = weakref.ref(node)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del node
        assert alive() is not None
        assert utils.free_memory() is None
        assert alive() is None
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.parametrize("capability, precision, dtype", [
    ((7, 5), "fp16", torch.float16),  # T4: bf16 only emulated, even though torch says supported
    ((7, 0), "fp16", torch.float16),  # V100
    ((8, 0), "bf16", torch.bfloat16),  # A100
    ((9, 0), "bf16", torch.bfloat16),  # H100
])
def test_precision_follows_compute_capability(monkeypatch, capability, precision, dtype):
    # The only place the unit tests fake a GPU: none exists on the machines that run them.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a, **k: types.SimpleNamespace(
        name="Fake GPU", total_memory=15 * 2**30 + 2**27, major=capability[0], minor=capability[1]))
    assert utils.device() == "cuda"
    assert utils.mixed_precision() == precision
    assert utils.precision_args() == {"fp16": precision == "fp16", "bf16": precision == "bf16"}
    assert utils.inference_dtype() is dtype
    assert utils.gpu_info() == {"name": "Fake GPU", "memory_gib": 15.1,
                                "compute_capability": f"{capability[0]}.{capability[1]}"}
