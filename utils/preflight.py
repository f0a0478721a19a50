"""The checks at the top of every notebook, before anything slow: the runtime, the precision, the libraries.

`utils.show_header(S)` runs `preflight(S)` and shows its answers in the header table:

- On Colab without a GPU runtime: how to switch (Runtime → Change runtime type → T4 GPU), and what
  cpu mode costs instead (the notebook's cpu_minutes against its t4_minutes).
- On a GPU without bfloat16 (a T4, compute capability 7.5): fp16 mixed precision, and PyTorch's own
  attention (SDPA). The course never asks for FlashAttention-2, which such GPUs lack.
- The installed versions of the libraries the course depends on, against the range it is tested with:
  from the Colab snapshot (tests/requirements-colab-env.txt) up to the next major release after the
  pins in requirements.txt. Outside it: the package, the version found, the range and the one-line fix.

It never installs or upgrades anything itself: on Colab, changing a package that is already imported
only takes effect after a restart (Runtime → Restart session), so it says what to run instead.
Everything it reads comes from `gpu_probe()`, `installed_versions()` and `in_colab()`, which the tests fake.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import sys
import warnings
from dataclasses import dataclass

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "transformers", "datasets", "accelerate", "peft", "huggingface_hub", "sentence-transformers",
            "evaluate", "cleanlab", "argilla")
COLAB_SNAPSHOT = REPO_ROOT / "tests" / "requirements-colab-env.txt"  # the lower bounds: Colab's versions
PINS = REPO_ROOT / "requirements.txt"                                  # the upper bounds: our pins' major
COLAB_INSTALLS = REPO_ROOT / "requirements-colab.txt"                  # what the bootstrap adds on Colab
# Not pinned in requirements.txt (transformers brings it): the major release the pinned venv resolves.
# tests/test_preflight.py fails when the pinned venv leaves this range, so it cannot go stale unnoticed.
UNPINNED_TESTED_MAJOR = {"huggingface_hub": 2}
SWITCH_TO_GPU = "Runtime → Change runtime type → T4 GPU → Save, then run all cells again"


@dataclass(frozen=True)
class GpuProbe:
    """What the runtime's GPU offers: whether there is one, its name and whether it computes in bfloat16."""

    available: bool
    name: str = ""
    bf16: bool = False


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def gpu_probe() -> GpuProbe:
    """Ask torch about the GPU. bfloat16 counts only from compute capability 8.0 (Ampere) on, and only when
    torch.cuda.is_bf16_supported() agrees: a T4 (7.5) emulates it, slowly, though torch may answer True."""
    import torch

    if not torch.cuda.is_available():
        return GpuProbe(False)
    major, _ = torch.cuda.get_device_capability(0)
    return GpuProbe(True, torch.cuda.get_device_properties(0).name,
                    bool(major >= 8 and torch.cuda.is_bf16_supported()))


def mixed_precision(gpu: GpuProbe | None = None) -> str | None:
    """The mixed precision to train in: "bf16" where the GPU has it, "fp16" on other GPUs, None without one."""
    gpu = gpu_probe() if gpu is None else gpu
    if not gpu.available:
        return None
    return "bf16" if gpu.bf16 else "fp16"


def attention_implementation(gpu: GpuProbe | None = None) -> str:
    """The attention the course's models load with: always "sdpa" (PyTorch's scaled dot-product attention).

    FlashAttention-2 needs an Ampere GPU, bfloat16/fp16 weights and the flash-attn package, which Colab
    lacks: asking for it on a T4 fails at load time, so the course never does.
    """
    return "sdpa"


def installed_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """The installed version of each package (None when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: pathlib.Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a requirements file (names canonical)."""
    pins = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
            if match:
                pins[_canonical(match.group(1))] = match.group(2)
    return pins


def _release(version: str) -> tuple[int, ...]:
    from packaging.version import Version

    return Version(version).release


def tested_ranges(packages: tuple[str, ...] = PACKAGES) -> dict[str, tuple[str, str]]:
    """The range each package is tested with: (lowest, first untested major), e.g. ("5.15.0", "6").

    Lowest: the Colab snapshot's version (for torch, the CUDA build Colab has, named in the snapshot's
    header, as the snapshot itself holds the CPU build the tests use), else what the Colab bootstrap
    installs, else our pin. Upper: the next major release after our pin (or after the lowest).
    """
    snapshot, pins, colab = _pins(COLAB_SNAPSHOT), _pins(PINS), _pins(COLAB_INSTALLS)
    header = COLAB_SNAPSHOT.read_text(encoding="utf-8") if COLAB_SNAPSHOT.exists() else ""
    colab_torch = re.search(r"Colab has (\d[\w.]*)(?:\+\w+)?", header)
    if colab_torch:
        snapshot["torch"] = min(snapshot.get("torch", colab_torch.group(1)), colab_torch.group(1), key=_release)
    ranges = {}
    for name in packages:
        key = _canonical(name)
        low = snapshot.get(key) or colab.get(key) or pins.get(key)
        if low is None:
            continue
        top_major = _release(pins.get(key, low))[0]
        top_major = max(top_major, UNPINNED_TESTED_MAJOR.get(name, top_major))
        ranges[name] = (low, str(top_major + 1))
    return ranges


def version_problems(versions: dict[str, str | None] | None = None,
                     ranges: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """One line per installed package outside its tested range: package, version found, range and the fix."""
    versions = installed_versions() if versions is None else versions
    ranges = tested_ranges() if ranges is None else ranges
    problems = []
    for name, found in versions.items():
        if found is None or name not in ranges:
            continue
        low, upper_major = ranges[name]
        release = _release(found)
        if release < _release(low) or release[0] >= int(upper_major):
            problems.append(f"{name} {found} is outside the tested range >={low},<{upper_major}. Fix: run "
                            f"`pip install \"{name}>={low},<{upper_major}\"` in a cell, then Runtime → Restart session "
                            "(on a laptop: restart the kernel).")
    return problems


def preflight(s) -> dict[str, str]:
    """Check the runtime for the notebook of settings `s`; print what to change; return the header's rows.

    Never installs anything: a package changed after it was imported keeps its old version until the
    runtime restarts, so the fix is printed for the student to run.
    """
    rows: dict[str, str] = {}
    gpu = gpu_probe()
    if not gpu.available:
        rows["preflight: GPU"] = "none"
        if in_colab():
            cost = ""
            if s.cpu_minutes is not None and s.t4_minutes is not None:
                cost = (f" In cpu mode this notebook takes about {s.cpu_minutes:g} min instead of about "
                        f"{s.t4_minutes:g} min on a T4, with smaller models and samples, so its numbers differ "
                        "from the gpu-mode ones.")
            message = f"This Colab runtime has no GPU. To switch: {SWITCH_TO_GPU}.{cost}"
            rows["preflight: GPU"] = f"none on this Colab runtime: {SWITCH_TO_GPU}"
            print(message, flush=True)
            warnings.warn(message, stacklevel=2)
    else:
        precision = mixed_precision(gpu)
        rows["preflight: GPU"] = gpu.name or "yes"
        rows["preflight: precision"] = (f"{precision}" + ("" if gpu.bf16 else " (this GPU has no bfloat16)"))
        rows["preflight: attention"] = (f"{attention_implementation(gpu)} (PyTorch's own; FlashAttention-2 "
                                        "is never requested)")
    problems = version_problems()
    if problems:
        print("Library versions the course is not tested with (nothing was changed; the fix follows each):\n- "
              + "\n- ".join(problems), flush=True)
        rows["preflight: libraries"] = f"{len(problems)} outside the tested range: " + "; ".join(
            p.split(" is outside")[0] for p in problems)
    else:
        rows["preflight: libraries"] = f"all {len(PACKAGES)} within the tested range"
    return rows
