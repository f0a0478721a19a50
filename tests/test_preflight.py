"""The preflight at the top of each notebook (utils/preflight.py): its three branches (no GPU on Colab, a GPU
without bfloat16, a library outside the tested range), each tested by faking what it reads (torch.cuda,
importlib.metadata.version, "google.colab" in sys.modules). Quick tier: no model, no notebook."""

from __future__ import annotations

import importlib.metadata
import pathlib
import subprocess
import sys
import types

import pytest
import torch
import transformers  # noqa: F401 (imported, as in a notebook: the preflight must leave it alone)

import utils
from utils import preflight

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def settings(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    return utils.settings("3_tune_bert", t4_minutes=12, cpu_minutes=15, SEED=42)


def fake_gpu(monkeypatch, capability: tuple[int, int] | None, name: str = "Tesla T4") -> None:
    """Make torch see one GPU of `capability` (None: no GPU). torch answers bf16 "supported" even on a T4."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: capability is not None)
    if capability is not None:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a, **k: types.SimpleNamespace(
            name=name, total_memory=15 * 2**30, major=capability[0], minor=capability[1]))


def fake_colab(monkeypatch, colab: bool) -> None:
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def fake_versions(monkeypatch, **found: str | None) -> None:
    """importlib.metadata.version answers `found` for these packages (None: not installed), the truth for others."""
    real = importlib.metadata.version

    def version(name: str) -> str:
        key = name.replace("-", "_")
        if key in found:
            if found[key] is None:
                raise importlib.metadata.PackageNotFoundError(name)
            return found[key]
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)


def test_colab_without_a_gpu_says_how_to_switch_and_what_cpu_mode_costs(monkeypatch, settings, capsys):
    fake_gpu(monkeypatch, None)
    fake_colab(monkeypatch, True)
    with pytest.warns(UserWarning, match="no GPU"):
        rows = preflight.preflight(settings)
    out = capsys.readouterr().out
    assert "Runtime → Change runtime type → T4 GPU" in out
    assert "about 15 min instead of about 12 min on a T4" in out  # the notebook's cpu_minutes vs t4_minutes
    assert rows["preflight: GPU"].startswith("none on this Colab runtime: Runtime → Change runtime type → T4 GPU")


def test_no_gpu_off_colab_asks_for_nothing(monkeypatch, settings, capsys):
    fake_gpu(monkeypatch, None)
    fake_colab(monkeypatch, False)
    rows = preflight.preflight(settings)
    assert rows["preflight: GPU"] == "none"
    assert "Change runtime type" not in capsys.readouterr().out
    assert "preflight: precision" not in rows


def test_a_gpu_without_bf16_gets_fp16_and_never_flash_attention(monkeypatch, settings):
    fake_gpu(monkeypatch, (7, 5))  # a T4: torch says bf16 is supported, but it is only emulated
    fake_colab(monkeypatch, True)
    rows = preflight.preflight(settings)
    assert rows["preflight: GPU"] == "Tesla T4"
    assert rows["preflight: precision"] == "fp16 (this GPU has no bfloat16)"
    assert rows["preflight: attention"].startswith("sdpa")
    assert utils.precision_args() == {"fp16": True, "bf16": False}  # what the Trainer gets follows the preflight
    assert utils.inference_dtype() == torch.float16


def test_an_ampere_gpu_gets_bf16(monkeypatch, settings):
    fake_gpu(monkeypatch, (8, 0), name="NVIDIA A100")
    rows = preflight.preflight(settings)
    assert rows["preflight: precision"] == "bf16"
    assert utils.precision_args() == {"fp16": False, "bf16": True}


def test_no_notebook_or_helper_asks_for_flash_attention_2():
    sources = [*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "utils").rglob("*.py")]
    asking = [p.name for p in sources if "flash_attention_2" in p.read_text(encoding="utf-8")]
    assert not asking, f"{asking} request FlashAttention-2, which a T4 lacks: load with the default (sdpa)"


@pytest.mark.parametrize("found", ["4.46.0", "6.0.0"])  # older than Colab's snapshot; the next major
def test_a_version_out_of_range_is_named_with_its_range_and_the_fix(monkeypatch, settings, capsys, found):
    fake_gpu(monkeypatch, None)
    fake_colab(monkeypatch, False)
    fake_versions(monkeypatch, transformers=found)
    ran = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))  # it must install nothing itself
    monkeypatch.setattr(subprocess, "check_call", lambda *a, **k: ran.append(a))
    imported = sys.modules["transformers"]
    rows = preflight.preflight(settings)
    out = capsys.readouterr().out
    low = preflight.tested_ranges()["transformers"][0]
    assert f"transformers {found} is outside the tested range >={low},<6" in out
    assert f'pip install "transformers>={low},<6"` in a cell, then Runtime → Restart session' in out
    assert rows["preflight: libraries"] == f"1 outside the tested range: transformers {found}"
    assert not ran and sys.modules["transformers"] is imported


def test_a_package_that_is_not_installed_is_not_a_version_problem(monkeypatch):
    fake_versions(monkeypatch, argilla=None)
    assert preflight.installed_versions()["argilla"] is None
    assert not [p for p in preflight.version_problems() if p.startswith("argilla")]


def test_the_ranges_come_from_the_colab_snapshot_and_the_pins():
    ranges = preflight.tested_ranges()
    assert set(ranges) == set(preflight.PACKAGES)
    assert ranges["torch"] == ("2.11.0", "3")  # Colab's CUDA build, named in the snapshot's header
    assert ranges["transformers"][1] == "6"    # requirements.txt pins 5.x


def test_the_pinned_environment_is_within_the_tested_ranges():
    """The venv the tests run in is the course's pinned one: if it leaves a range, a range is wrong."""
    assert preflight.version_problems() == []


def test_the_header_shows_the_preflight(monkeypatch, settings):
    fake_gpu(monkeypatch, None)
    fake_colab(monkeypatch, False)
    table = utils.show_header(settings)
    assert table.loc["preflight: GPU", ""] == "none"
    assert table.loc["preflight: libraries", ""].startswith("all 10 within")
