"""Tests of tests/hub_fixture.py: every course model id resolves offline to a tiny model like the real repo.

The loading checks run in subprocesses with the fixture's environment, because huggingface_hub and
transformers read HF_HOME when they are imported (and this pytest process may have imported them already).
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import struct
import subprocess
import sys
import time

import pytest

# The hub fixture serves the gpu/cpu-setting notebook runs, which are the full tier: so are its own tests.
pytestmark = pytest.mark.full

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import hub_fixture as hf  # noqa: E402  (tests/ has no __init__.py)

ROOT = hf.REPO_ROOT
FIXTURE_DIR = ROOT / "build" / "hub-fixture-test"
FP32_DIR = ROOT / "build" / "hub-fixture-test-fp32"
SAFETENSORS_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}
# Variables that would override HF_HOME, or change the course, if the caller's environment has them.
_OVERRIDES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "SENTENCE_TRANSFORMERS_HOME",
              "HF_TOKEN", "COURSE_MODE", "CI")


@pytest.fixture(scope="session")
def fixture_env() -> dict[str, str]:
    started = time.perf_counter()
    env = hf.build(FIXTURE_DIR)
    print(f"hub fixture ready in {time.perf_counter() - started:.1f} s")
    return env


@pytest.fixture(scope="session")
def fp32_env() -> dict[str, str]:
    return hf.build(FP32_DIR, all_fp32=True)


def _snapshot(env: dict[str, str], repo_id: str) -> pathlib.Path:
    repo = pathlib.Path(env["HF_HOME"]) / "hub" / f"models--{repo_id.replace('/', '--')}"
    return repo / "snapshots" / (repo / "refs" / "main").read_text()


def _safetensors_dtypes(path: pathlib.Path) -> set[str]:
    """The dtypes in a safetensors file, read from its JSON header (no torch needed)."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return {SAFETENSORS_DTYPES[v["dtype"]] for k, v in header.items() if k != "__metadata__"}


def _start(env: dict[str, str], script: str) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if k not in _OVERRIDES} | env
    return subprocess.Popen([sys.executable, "-c", script], env=full, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _result(process: subprocess.Popen, timeout: int = 240) -> dict:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]
    return json.loads(output.strip().splitlines()[-1])


# Loads every fixture the way the notebooks do, offline; prints one JSON line at the end.
LOAD_SCRIPT = r"""
import json, sys
sys.path.insert(0, "tests")
import hub_fixture as hf
import torch, transformers
from huggingface_hub import try_to_load_from_cache
from transformers import AutoConfig, AutoTokenizer, pipeline

report = {}
for repo_id, spec in hf.FIXTURE_MODELS.items():
    config = AutoConfig.from_pretrained(repo_id)
    tokenizer = AutoTokenizer.from_pretrained(repo_id)
    model = getattr(transformers, spec.architecture).from_pretrained(repo_id)  # default dtype, as notebooks do
    with torch.no_grad():
        output = model(**tokenizer(["We will cut the defence budget."], return_tensors="pt"))
    entry = {"cached": try_to_load_from_cache(repo_id, "config.json"), "model_type": config.model_type,
             "class": type(model).__name__, "dtype": str(model.dtype).removeprefix("torch."),
             "finite": bool(torch.isfinite(output[0].float()).all()), "tokenizer_len": len(tokenizer),
             "vocab_size": config.vocab_size, "id2label": {str(k): v for k, v in config.id2label.items()}}
    if spec.model_type in ("llama", "qwen2"):
        messages = [{"role": "user", "content": "Hello!"}]
        entry["chat"] = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        entry["eos"] = tokenizer.eos_token
        entry["pad"] = tokenizer.pad_token
        generated = model.generate(**tokenizer("Hi", return_tensors="pt"), max_new_tokens=3, do_sample=False)
        entry["generated"] = generated.shape[1]
    report[repo_id] = entry

from sentence_transformers import SentenceTransformer
for repo_id in ("sentence-transformers/all-MiniLM-L6-v2", "BAAI/bge-small-en-v1.5"):
    encoder = SentenceTransformer(repo_id, device="cpu")
    vectors = encoder.encode(["We will cut the defence budget.", "Schools need money."])
    report[repo_id]["st_shape"] = list(vectors.shape)
    report[repo_id]["st_norm"] = float((vectors ** 2).sum(axis=1).max() ** 0.5)
    report[repo_id]["st_max_seq_length"] = encoder.max_seq_length

for repo_id, spec in hf.FIXTURE_MODELS.items():
    if spec.id2label and "entailment" in spec.id2label.values():
        classify = pipeline("zero-shot-classification", model=repo_id, device="cpu")
        answer = classify("We will cut the defence budget.", candidate_labels=["military", "schools"],
                          hypothesis_template="This text is about {}.")
        report[repo_id]["zero_shot"] = sorted(answer["labels"])
print(json.dumps(report))
"""

# The same spm-only repos without protobuf (hidden from the import system): the real layout needs it.
NO_PROTOBUF_SCRIPT = r"""
import json, sys
sys.modules["google"] = None  # import google / find_spec("google") now fail as if protobuf were not installed
sys.modules["google.protobuf"] = None
from transformers import AutoTokenizer
report = {}
for repo_id in ("microsoft/deberta-v3-base", "MoritzLaurer/deberta-v3-base-zeroshot-v2.0"):
    try:
        report[repo_id] = type(AutoTokenizer.from_pretrained(repo_id)).__name__
    except Exception as error:
        report[repo_id] = "error: " + type(error).__name__
print(json.dumps(report))
"""


@pytest.fixture(scope="session")
def reports(fixture_env: dict[str, str]) -> dict[str, dict]:
    """Both scripts' reports; they run side by side (each spends seconds importing torch)."""
    processes = {"load": _start(fixture_env, LOAD_SCRIPT), "no_protobuf": _start(fixture_env, NO_PROTOBUF_SCRIPT)}
    return {name: _result(process) for name, process in processes.items()}


@pytest.fixture(scope="session")
def loaded(reports: dict[str, dict]) -> dict:
    return reports["load"]


def test_every_course_model_has_a_spec() -> None:
    kinds = hf._modes().MODEL_KINDS
    assert set(kinds) == set(hf.FIXTURE_MODELS), "FIXTURE_MODELS must cover utils.modes.MODEL_KINDS exactly"


def test_a_new_model_id_without_spec_stops_the_build(tmp_path: pathlib.Path, monkeypatch) -> None:
    class FakeModes:
        MODEL_KINDS = {"someone/new-model": "encoder"}

    monkeypatch.setattr(hf, "_modes", lambda: FakeModes)
    with pytest.raises(KeyError, match="someone/new-model"):
        hf.build_tree(tmp_path)


def test_environment(fixture_env: dict[str, str]) -> None:
    assert fixture_env["HF_HOME"] == str(FIXTURE_DIR / "hf_home")
    assert fixture_env["HF_HUB_CACHE"] == str(FIXTURE_DIR / "hf_home" / "hub")
    assert fixture_env["COURSE_DATA_URL"] == f"file://{FIXTURE_DIR}/data/"
    for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        assert fixture_env[flag] == "1"


def test_cache_layout_is_found_by_huggingface_hub(fixture_env: dict[str, str]) -> None:
    from huggingface_hub import try_to_load_from_cache

    for repo_id in hf.FIXTURE_MODELS:
        commit = (pathlib.Path(fixture_env["HF_HUB_CACHE"]) / f"models--{repo_id.replace('/', '--')}" / "refs"
                  / "main").read_text()
        assert len(commit) == 40 and int(commit, 16) >= 0
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=fixture_env["HF_HUB_CACHE"])
        assert found == str(_snapshot(fixture_env, repo_id) / "config.json"), repo_id


def test_config_matches_the_real_repo(fixture_env: dict[str, str]) -> None:
    for repo_id, spec in hf.FIXTURE_MODELS.items():
        config = json.loads((_snapshot(fixture_env, repo_id) / "config.json").read_text())
        assert config["model_type"] == spec.model_type, repo_id
        assert config.get("architectures", ["DebertaV2Model"]) == [spec.architecture], repo_id
        assert config.get("id2label") == ({str(k): v for k, v in spec.id2label.items()} if spec.id2label else None)
        assert config.get("torch_dtype") == spec.config_dtype and "dtype" not in config, repo_id
    deberta = json.loads((_snapshot(fixture_env, "microsoft/deberta-v3-base") / "config.json").read_text())
    assert "architectures" not in deberta and "torch_dtype" not in deberta  # as on the Hub
    assert deberta["pos_att_type"] == "p2c|c2p" and deberta["position_buckets"] == 256


def test_checkpoint_dtype_on_disk(fixture_env: dict[str, str], fp32_env: dict[str, str]) -> None:
    for repo_id, spec in hf.FIXTURE_MODELS.items():
        assert _safetensors_dtypes(_snapshot(fixture_env, repo_id) / "model.safetensors") == {spec.disk_dtype}
        assert _safetensors_dtypes(_snapshot(fp32_env, repo_id) / "model.safetensors") == {"float32"}, repo_id
        config = json.loads((_snapshot(fp32_env, repo_id) / "config.json").read_text())
        assert config.get("torch_dtype") == ("float32" if spec.config_dtype else None), repo_id
    expected = {"microsoft/deberta-v3-base": "float16", "MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7":
                "float16", "Qwen/Qwen2.5-0.5B-Instruct": "bfloat16", "HuggingFaceTB/SmolLM2-135M-Instruct": "bfloat16",
                "answerdotai/ModernBERT-base": "float32"}
    assert {k: hf.FIXTURE_MODELS[k].disk_dtype for k in expected} == expected


def test_tokenizer_file_layout(fixture_env: dict[str, str]) -> None:
    known = {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spm.model",
             "added_tokens.json", "vocab.json", "merges.txt"}
    for repo_id, spec in hf.FIXTURE_MODELS.items():
        present = {p.name for p in _snapshot(fixture_env, repo_id).iterdir()} & known
        assert present == set(spec.tokenizer_files), repo_id
    deberta = _snapshot(fixture_env, "microsoft/deberta-v3-base")
    assert (deberta / "spm.model").exists() and not (deberta / "tokenizer.json").exists()
    assert json.loads((deberta / "tokenizer_config.json").read_text()) == {"do_lower_case": False, "vocab_type": "spm"}
    assert json.loads((_snapshot(fixture_env, "MoritzLaurer/deberta-v3-base-zeroshot-v2.0")
                       / "added_tokens.json").read_text()) == {"[MASK]": 1000}


def test_every_model_loads_offline_with_the_real_head_and_dtype(loaded: dict) -> None:
    for repo_id, spec in hf.FIXTURE_MODELS.items():
        entry = loaded[repo_id]
        assert entry["cached"], repo_id
        assert (entry["model_type"], entry["class"]) == (spec.model_type, spec.architecture), repo_id
        # No dtype in config.json: transformers 5 loads the checkpoint's own dtype (float16 for DeBERTa-v3).
        assert entry["dtype"] == spec.disk_dtype, repo_id
        assert entry["finite"], repo_id
        assert entry["tokenizer_len"] <= entry["vocab_size"], repo_id
        if spec.id2label:
            assert entry["id2label"] == {str(k): v for k, v in spec.id2label.items()}, repo_id


def test_chat_templates(loaded: dict) -> None:
    smol = loaded["HuggingFaceTB/SmolLM2-360M-Instruct"]
    assert smol["chat"].startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert smol["chat"].endswith("<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n")
    qwen = loaded["Qwen/Qwen2.5-1.5B-Instruct"]
    assert qwen["chat"] == ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                            "<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n")
    assert (qwen["eos"], qwen["pad"]) == ("<|im_end|>", "<|endoftext|>")
    assert all(loaded[i]["generated"] > 1 for i in hf.FIXTURE_MODELS if "chat" in loaded[i])


def test_sentence_transformers_encode(loaded: dict) -> None:
    for repo_id, length in (("sentence-transformers/all-MiniLM-L6-v2", 256), ("BAAI/bge-small-en-v1.5", 512)):
        assert loaded[repo_id]["st_shape"] == [2, hf.HIDDEN]
        assert loaded[repo_id]["st_norm"] == pytest.approx(1.0, abs=1e-3)  # the Normalize module is there
        assert loaded[repo_id]["st_max_seq_length"] == length


def test_zero_shot_pipeline_runs_on_every_nli_fixture(loaded: dict) -> None:
    nli = [i for i, s in hf.FIXTURE_MODELS.items() if s.id2label and "entailment" in s.id2label.values()]
    assert len(nli) == 5
    for repo_id in nli:
        assert loaded[repo_id]["zero_shot"] == ["military", "schools"], repo_id


def test_spm_only_layout_needs_protobuf_like_the_real_repo(reports: dict[str, dict]) -> None:
    report = reports["no_protobuf"]
    # If transformers ever converts spm.model without protobuf, the first line fails: drop it then.
    assert report["microsoft/deberta-v3-base"].startswith("error")
    assert report["MoritzLaurer/deberta-v3-base-zeroshot-v2.0"] == "DebertaV2Tokenizer"  # has tokenizer.json


def test_data_files_have_the_real_format(fixture_env: dict[str, str]) -> None:
    folder = FIXTURE_DIR / "data"
    rows = {}
    for split in ("train", "test"):
        with (folder / f"df_manifesto_military_{split}.csv").open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == hf.DATA_COLUMNS
            rows[split] = list(reader)
        names = {"0": "Military: Negative", "1": "Military: Positive", "2": "Other"}
        assert all(names[r["label"]] == r["label_text"] for r in rows[split])
        assert len({r["text_original"] for r in rows[split]}) == len(rows[split])  # no duplicate sentence
    # Large enough for the notebooks' gpu settings: notebook 5 takes all 3970 train rows, N_TEST=2000.
    assert len(rows["train"]) == 3970 and len(rows["test"]) >= 2000
    assert sum(r["label_text"] == "Other" for r in rows["test"]) > 0.75 * len(rows["test"])
    assert not {r["text_original"] for r in rows["train"]} & {r["text_original"] for r in rows["test"]}


def test_build_is_deterministic(fixture_env: dict[str, str], tmp_path: pathlib.Path) -> None:
    ids = ["microsoft/deberta-v3-base", "answerdotai/ModernBERT-base", "google-bert/bert-base-uncased",
           "Qwen/Qwen2.5-0.5B-Instruct"]
    hf.build_tree(tmp_path, ids=ids)  # a second build, of a subset: same bytes as the session's fixture
    for repo_id in ids:
        for path in sorted(_snapshot(fixture_env, repo_id).rglob("*")):
            if path.is_file():
                twin = tmp_path / path.relative_to(FIXTURE_DIR)
                assert twin.read_bytes() == path.read_bytes(), path
    for name in ("df_manifesto_military_train.csv", "df_manifesto_military_test.csv"):
        assert (tmp_path / "data" / name).read_bytes() == (FIXTURE_DIR / "data" / name).read_bytes()


def test_reuse_is_fast_and_the_cli_prints_the_environment(fixture_env: dict[str, str]) -> None:
    started = time.perf_counter()
    assert hf.build(FIXTURE_DIR) == fixture_env
    assert time.perf_counter() - started < 1.0
    stamp = json.loads((FIXTURE_DIR / hf.STAMP).read_text())
    assert stamp["all_fp32"] is False and stamp["versions"]["transformers"]
    result = subprocess.run([sys.executable, "tests/hub_fixture.py", str(FIXTURE_DIR)], cwd=ROOT, check=True,
                            capture_output=True, text=True, timeout=60)
    assert dict(line.split("=", 1) for line in result.stdout.splitlines()) == fixture_env
