"""`python -m utils.label_corpus`: right probabilities for each kind of model, rows in input order,
resuming after a real kill or Ctrl-C, two processes agreeing with one, the int8 backend's labels
against fp32 torch, one run per output at a time, and clear errors on bad input.

The models are the offline stand-ins: all-MiniLM-L6-v2 with a new head, and SmolLM2 cut to two
layers with a LoRA adapter; for the int8 export of the students' architecture, a tiny random
DeBERTa-v2 NLI model from tests/hub_fixture.py. Inputs are small, so each run takes seconds: what
is tested is the command, not the model. int8 exports go to a temporary cache (COURSE_CACHE_DIR).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import utils
from utils import corpus_job, label_corpus
from utils.modes import encoder_stand_in, llm_stand_in

ROOT = pathlib.Path(__file__).resolve().parent.parent
LABELS = list(label_corpus.task_labels().labels)
PROBS = [label_corpus.PROB_PREFIX + label for label in LABELS]


def _env() -> dict[str, str]:
    return {**os.environ, "COURSE_MODE": "ci", "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}


def _save_classifier(folder: pathlib.Path, id2label: dict[int, str]) -> pathlib.Path:
    """The encoder stand-in with a new head that tells texts apart (no training needed)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    source = encoder_stand_in()
    config = AutoConfig.from_pretrained(source, num_labels=len(id2label), id2label=id2label,
                                        label2id={label: i for i, label in id2label.items()})
    model = AutoModelForSequenceClassification.from_pretrained(source, config=config).eval()
    # A random head gives every text nearly the same, near-uniform answer. Instead each label's weights
    # point to the pooled vector of one anchor sentence: texts then get different labels, far from ties.
    tokenizer = AutoTokenizer.from_pretrained(source)
    anchors = ["We will cut the defence budget.", "Our navy needs new ships.", "Schools need more teachers."]
    with torch.no_grad():
        pooled = model.bert(**tokenizer(anchors[:len(id2label)], padding=True, return_tensors="pt")).pooler_output
        model.classifier.weight.copy_(20 * (pooled - pooled.mean(dim=0)))
        model.classifier.bias.zero_()
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> pathlib.Path:
    return _save_classifier(tmp_path_factory.mktemp("encoder"), dict(enumerate(LABELS)))


@pytest.fixture(scope="module")
def nli_model(tmp_path_factory) -> pathlib.Path:
    # entailment is id 1 here: the command must read it from the config, not assume 0.
    return _save_classifier(tmp_path_factory.mktemp("nli"), {0: "not_entailment", 1: "entailment"})


def corpus(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` rows of the course's sentences in a shuffled order, with context and a unique row id."""
    rows = pd.concat([pd.read_csv(ROOT / "data" / "manifesto_military" / f"{split}.csv", dtype=str,
                                  keep_default_na=False) for split in ("train", "test")], ignore_index=True)
    rng = np.random.default_rng(seed)
    picked = rows.iloc[rng.integers(0, len(rows), n)].reset_index(drop=True)
    # Sentences cut at random lengths, so that sorting by length really reorders the rows.
    cut = [" ".join(text.split()[: max(2, int(rng.integers(2, 40)))]) for text in picked["text_original"]]
    return pd.DataFrame({"row_id": [f"r{i:05d}" for i in range(n)], "sentence": cut,
                         "before": picked["text_preceding"], "after": picked["text_following"]})


def run(model: pathlib.Path, source: pathlib.Path, output: pathlib.Path, *extra: str,
        text_column: str | None = "sentence", backend: str = "torch") -> int:
    """The command, in this process (its PartialState is a single, non-distributed one); fp32 torch unless
    `backend` says otherwise, so that probabilities can be compared with torch's to 1e-5."""
    return label_corpus.main(["--model", str(model), "--input", str(source), "--output", str(output),
                              *(["--text-column", text_column] if text_column else []), "--threads", "1",
                              "--backend", backend, *extra])


def command(model: pathlib.Path, source: pathlib.Path, output: pathlib.Path, *extra: str) -> list[str]:
    """The command line of a run in another process."""
    return [sys.executable, "-m", "utils.label_corpus", "--model", str(model), "--input", str(source),
            "--output", str(output), "--text-column", "sentence", "--threads", "1", *extra]


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory) -> pathlib.Path:
    """A cache folder of this module's own for int8 exports (a test must not fill the user's cache)."""
    return tmp_path_factory.mktemp("course-cache")


@pytest.fixture
def int8(int8_cache, monkeypatch) -> pathlib.Path:
    """Exports go to the module's cache, in this process and the ones it starts (_env copies os.environ)."""
    monkeypatch.setenv("COURSE_CACHE_DIR", str(int8_cache))
    return int8_cache


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread in this process: on a machine shared with other jobs, two threads that wait for
    each other run several times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- each kind gives the model's own answers


def test_encoder_output_matches_a_plain_pipeline_row_by_row(encoder, tmp_path):
    from transformers import pipeline

    from utils.data import prepare_texts

    data = corpus(40)
    data.to_csv(tmp_path / "in.csv", index=False)
    assert run(encoder, tmp_path / "in.csv", tmp_path / "out.csv", "--context-columns", "before", "after",
               "--chunk-size", "64", "--batch-size", "8") == 0
    out = pd.read_csv(tmp_path / "out.csv", dtype={"row_id": str}, keep_default_na=False)
    assert list(out.columns) == [*data.columns, label_corpus.PREDICTED, *PROBS]
    pd.testing.assert_frame_equal(out[data.columns], data)  # every input column back, rows in input order
    frame = pd.DataFrame({"text_original": data["sentence"], "text_preceding": data["before"],
                          "text_following": data["after"]})
    texts = prepare_texts(frame, context=True)["text"].tolist()
    assert texts[0].startswith(data.loc[0, "before"]) and 'The quote: "' in texts[0]  # as notebook 3 trains
    classify = pipeline("text-classification", model=str(encoder), top_k=None, device="cpu")
    expected = pd.DataFrame([{item["label"]: item["score"] for item in one} for one in classify(texts)])[LABELS]
    np.testing.assert_allclose(out[PROBS].to_numpy(), expected.to_numpy(), atol=1e-5)
    assert list(out[label_corpus.PREDICTED]) == list(expected.idxmax(axis=1))
    assert out[label_corpus.PREDICTED].nunique() > 1  # the head really separates the texts


def test_nli_output_is_each_hypothesis_entailment_probability(nli_model, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    task = label_corpus.task_labels()
    data = corpus(12, seed=1)
    data.to_csv(tmp_path / "in.csv", index=False)
    assert run(nli_model, tmp_path / "in.csv", tmp_path / "out.parquet", "--no-context", "--chunk-size", "5") == 0
    out = pd.read_parquet(tmp_path / "out.parquet")
    tokenizer = AutoTokenizer.from_pretrained(nli_model)
    model = AutoModelForSequenceClassification.from_pretrained(nli_model).eval()
    expected = np.zeros((len(data), len(LABELS)))
    with torch.no_grad():
        for i, sentence in enumerate(data["sentence"]):  # one pair at a time: no batching, no sorting
            for j, label in enumerate(LABELS):
                logits = model(**tokenizer(sentence, task.hypotheses[label], return_tensors="pt")).logits
                expected[i, j] = torch.softmax(logits, dim=-1)[0, 1].item()  # id 1 is entailment here
    np.testing.assert_allclose(out[PROBS].to_numpy(), expected, atol=1e-5)
    assert list(out[label_corpus.PREDICTED]) == [LABELS[j] for j in expected.argmax(axis=1)]


@pytest.fixture(scope="module")
def lora_adapter(tmp_path_factory) -> pathlib.Path:
    """A LoRA adapter (random, not zero, so it changes the scores) on SmolLM2 cut to two layers."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    base_dir = tmp_path_factory.mktemp("smollm2-2-layers")
    config = AutoConfig.from_pretrained(llm_stand_in(), num_hidden_layers=2)
    AutoModelForCausalLM.from_pretrained(llm_stand_in(), config=config).save_pretrained(base_dir)
    AutoTokenizer.from_pretrained(llm_stand_in()).save_pretrained(base_dir)
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                      init_lora_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), lora)
    adapter_dir = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(adapter_dir)  # the adapter alone, as notebook 7 saves it: no tokenizer
    return adapter_dir


def test_lora_output_is_the_answer_words_likelihoods_normalised(lora_adapter, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    from utils.llm import label_log_likelihoods, messages_for

    task = label_corpus.task_labels()
    assert label_corpus.detect_kind(str(lora_adapter)) == "lora"
    data = corpus(7, seed=2)
    data.to_csv(tmp_path / "in.csv", index=False)
    assert run(lora_adapter, tmp_path / "in.csv", tmp_path / "out.csv", "--context-columns", "before", "after",
               "--chunk-size", "4", "--batch-size", "3") == 0
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    base = json.loads((lora_adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    model = AutoPeftModelForCausalLM.from_pretrained(lora_adapter).eval()  # not merged: an independent path
    frame = pd.DataFrame({"text_original": data["sentence"], "text_preceding": data["before"],
                          "text_following": data["after"]})
    scores = label_log_likelihoods(model, AutoTokenizer.from_pretrained(base),
                                   messages_for(frame, context=True, instruction=task.instruction),
                                   [task.answers[label] for label in LABELS], batch_size=1, progress=False)
    expected = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out[PROBS].to_numpy(), expected, atol=1e-5)
    assert list(out[label_corpus.PREDICTED]) == [LABELS[j] for j in scores.argmax(axis=1)]


def test_a_course_hub_id_maps_to_its_offline_stand_in_in_ci_mode(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    assert label_corpus.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == str(llm_stand_in())
    assert label_corpus.resolve_model("MoritzLaurer/deberta-v3-base-zeroshot-v2.0") == str(encoder_stand_in())


# ---------------------------------------------------------------- files: streaming, Parquet, resuming


def test_chunks_have_the_same_boundaries_whatever_the_row_groups(tmp_path):
    table = pa.table({"x": list(range(103))})
    for row_group_size in (7, 50, 1000):
        pq.write_table(table, tmp_path / "in.parquet", row_group_size=row_group_size)
        chunks = list(corpus_job.read_chunks(tmp_path / "in.parquet", 20))
        assert [c.num_rows for c in chunks] == [20, 20, 20, 20, 20, 3]
        assert pa.concat_tables(chunks).column("x").to_pylist() == list(range(103))


def test_parquet_input_in_small_row_groups_gives_the_csv_result(encoder, tmp_path):
    data = corpus(60, seed=3)
    data.to_csv(tmp_path / "in.csv", index=False)
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), tmp_path / "in.parquet", row_group_size=13)
    assert run(encoder, tmp_path / "in.csv", tmp_path / "from_csv.csv", "--chunk-size", "32") == 0
    assert run(encoder, tmp_path / "in.parquet", tmp_path / "from_parquet.parquet", "--chunk-size", "32") == 0
    from_csv = pd.read_csv(tmp_path / "from_csv.csv", keep_default_na=False)
    from_parquet = pd.read_parquet(tmp_path / "from_parquet.parquet")
    assert list(from_parquet["row_id"]) == list(data["row_id"])
    assert list(from_parquet[label_corpus.PREDICTED]) == list(from_csv[label_corpus.PREDICTED])
    np.testing.assert_allclose(from_parquet[PROBS].to_numpy(), from_csv[PROBS].to_numpy(), rtol=0, atol=1e-12)
    assert not corpus_job.work_dir(tmp_path / "from_parquet.parquet").exists()  # parts removed after the merge


def test_a_killed_run_resumes_after_its_last_chunk_and_equals_an_uninterrupted_run(encoder, tmp_path):
    data = corpus(200, seed=4)
    data.to_csv(tmp_path / "in.csv", index=False)
    args = ["--chunk-size", "10", "--batch-size", "10", "--no-context"]
    assert run(encoder, tmp_path / "in.csv", tmp_path / "whole.csv", *args) == 0

    output = tmp_path / "resumed.csv"
    folder = corpus_job.work_dir(output)
    with open(tmp_path / "log.txt", "w") as log:
        process = subprocess.Popen(command(encoder, tmp_path / "in.csv", output, "--backend", "torch", *args),
                                   env=_env(), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not corpus_job.part_path(folder, 0).exists():
            assert process.poll() is None, (tmp_path / "log.txt").read_text()
            assert time.monotonic() < deadline, "no chunk was finished within 2 minutes"
            time.sleep(0.002)
        process.send_signal(signal.SIGSTOP)  # freeze it first, so the count below is what it had done
        finished = corpus_job.finished_chunks(folder)
        process.kill()
        process.wait()
    assert 1 <= len(finished) < 20, f"the kill came after {len(finished)} of 20 chunks: not half-way"
    assert not output.exists()

    assert run(encoder, tmp_path / "in.csv", output, *args) == 0  # the same command again
    whole = pd.read_csv(tmp_path / "whole.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(pd.read_csv(output, keep_default_na=False), whole, check_exact=True)
    assert not folder.exists()


@pytest.fixture
def unfinished_job(encoder, tmp_path, monkeypatch):
    """A job whose chunks are all done but whose merge never ran (as if killed just before it)."""
    corpus(40, seed=5).to_csv(tmp_path / "in.csv", index=False)
    output = tmp_path / "out.csv"

    def killed(*_):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(corpus_job, "merge_parts", killed)
        assert run(encoder, tmp_path / "in.csv", output, "--chunk-size", "16") == label_corpus.INTERRUPTED
    assert sorted(corpus_job.finished_chunks(corpus_job.work_dir(output))) == [0, 1, 2]
    return tmp_path / "in.csv", output


def test_resuming_with_another_model_or_chunk_size_is_refused_and_names_the_difference(
        unfinished_job, nli_model, encoder, capsys):
    source, output = unfinished_job
    assert run(nli_model, source, output, "--chunk-size", "16") == 2
    message = capsys.readouterr().err
    assert "not this one" in message and "model" in message and "delete" in message
    assert run(encoder, source, output, "--chunk-size", "8") == 2
    assert "chunk_size: 16 then, 8 now" in capsys.readouterr().err
    assert sorted(corpus_job.finished_chunks(corpus_job.work_dir(output))) == [0, 1, 2]  # nothing was lost

    assert run(encoder, source, output, "--chunk-size", "16", "--batch-size", "5") == 0  # another batch size is fine
    assert "resuming after 3 finished chunk(s)" in capsys.readouterr().out
    assert len(pd.read_csv(output)) == 40


def test_a_changed_input_file_is_not_resumed(unfinished_job, encoder, capsys):
    source, output = unfinished_job
    with open(source, "a", encoding="utf-8") as f:
        f.write("r99999,One more sentence.,,\n")
    assert run(encoder, source, output, "--chunk-size", "16") == 2
    assert "input_bytes" in capsys.readouterr().err


def test_two_processes_write_the_same_output_as_one(encoder, tmp_path):
    # On int8: test_an_interrupted_int8_job_resumed_on_two_processes_equals_one_uninterrupted_process.
    data = corpus(120, seed=6)
    data.to_csv(tmp_path / "in.csv", index=False)
    args = ["--text-column", "sentence", "--no-context", "--chunk-size", "32", "--batch-size", "8", "--threads", "1",
            "--backend", "torch"]
    assert label_corpus.main(["--model", str(encoder), "--input", str(tmp_path / "in.csv"),
                              "--output", str(tmp_path / "one.csv"), *args]) == 0
    torchrun = pathlib.Path(sys.executable).with_name("torchrun")
    result = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "utils.label_corpus", "--model", str(encoder),
                             "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "two.csv"), *args],
                            env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "with 2 process(es)" in result.stdout
    one = pd.read_csv(tmp_path / "one.csv", keep_default_na=False)
    two = pd.read_csv(tmp_path / "two.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(two.drop(columns=PROBS), one.drop(columns=PROBS), check_exact=True)
    np.testing.assert_allclose(two[PROBS].to_numpy(), one[PROBS].to_numpy(), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- the int8 backend


def test_int8_gives_the_labels_of_fp32_torch(encoder, int8, tmp_path, capsys):
    data = corpus(300, seed=8)
    data.to_csv(tmp_path / "in.csv", index=False)
    args = ["--no-context", "--chunk-size", "100", "--batch-size", "16"]
    assert run(encoder, tmp_path / "in.csv", tmp_path / "fp32.csv", *args) == 0
    assert run(encoder, tmp_path / "in.csv", tmp_path / "int8.csv", *args, backend="auto") == 0  # int8 on a CPU
    out = capsys.readouterr().out
    assert "backend int8 (ONNX Runtime)" in out and "backend torch:" not in out
    assert len(list((int8 / "onnx-int8").glob("*/model.int8.onnx"))) == 1
    fp32 = pd.read_csv(tmp_path / "fp32.csv", keep_default_na=False)
    quantised = pd.read_csv(tmp_path / "int8.csv", keep_default_na=False)
    assert list(quantised["row_id"]) == list(data["row_id"])
    same = (quantised[label_corpus.PREDICTED] == fp32[label_corpus.PREDICTED]).mean()
    assert same >= 0.995, f"int8 gives the fp32 label for {same:.1%} of the texts"
    assert fp32[label_corpus.PREDICTED].nunique() == len(LABELS)  # not one label for everything
    # Close, not equal: rounding the weights to int8 moves the probabilities a little.
    difference = np.abs(quantised[PROBS].to_numpy() - fp32[PROBS].to_numpy())
    assert 0 < difference.max() < 0.2 and difference.mean() < 0.02


def test_the_students_deberta_v2_architecture_exports_to_int8(int8, tmp_path, capsys):
    import hub_fixture  # tests/hub_fixture.py: a tiny random model of the real repo's architecture and config

    repo = "MoritzLaurer/deberta-v3-base-zeroshot-v2.0"
    hub_fixture.build_tree(tmp_path / "hub", ids=[repo])
    (model,) = (tmp_path / "hub" / "hf_home" / "hub").glob(f"models--{repo.replace('/', '--')}/snapshots/*")
    data = corpus(12, seed=9)
    data.to_csv(tmp_path / "in.csv", index=False)
    assert run(model, tmp_path / "in.csv", tmp_path / "fp32.csv", "--no-context") == 0
    assert run(model, tmp_path / "in.csv", tmp_path / "int8.csv", "--no-context", backend="int8") == 0
    assert "with nli model" in capsys.readouterr().out
    fp32 = pd.read_csv(tmp_path / "fp32.csv", keep_default_na=False)
    quantised = pd.read_csv(tmp_path / "int8.csv", keep_default_na=False)
    # Random weights give near-equal scores (labels are ties): the probabilities are what can be compared.
    np.testing.assert_allclose(quantised[PROBS].to_numpy(), fp32[PROBS].to_numpy(), atol=0.01)


def test_a_model_that_does_not_export_falls_back_to_torch_with_a_one_line_reason(encoder, int8, tmp_path,
                                                                                  monkeypatch, capsys):
    from utils import onnx_int8

    def fails(*_):
        raise NotImplementedError("aten::unheard_of has no ONNX symbolic\nmore detail")

    monkeypatch.setattr(onnx_int8, "_export", fails)
    monkeypatch.setattr(onnx_int8, "OPTIONS", {**onnx_int8.OPTIONS, "test": "fails"})  # its own cache entry
    corpus(20, seed=10).to_csv(tmp_path / "in.csv", index=False)
    assert run(encoder, tmp_path / "in.csv", tmp_path / "auto.csv", backend="auto") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("backend torch:")]
    assert lines == [f"backend torch: {encoder} does not export to ONNX (NotImplementedError: aten::unheard_of has "
                     "no ONNX symbolic)."]
    assert run(encoder, tmp_path / "in.csv", tmp_path / "int8.csv", backend="int8") == 2  # no silent torch
    message = capsys.readouterr().err
    assert "--backend int8" in message and "cached: delete" in message and "--backend torch" in message
    assert not corpus_job.work_dir(tmp_path / "int8.csv").exists()  # stopped before the job began: no folder left


def test_auto_chooses_int8_only_for_encoders_and_nli_on_a_cpu():
    from utils.corpus_models import choose_backend

    assert choose_backend("auto", "encoder", "cpu") == ("int8", "")
    assert choose_backend("auto", "nli", "cpu") == ("int8", "")
    assert choose_backend("auto", "lora", "cpu") == ("torch", "")
    assert choose_backend("auto", "encoder", "cuda") == ("torch", "")
    assert choose_backend("torch", "encoder", "cpu") == ("torch", "")
    with pytest.raises(corpus_job.CorpusError, match="not a LoRA LLM"):
        choose_backend("int8", "lora", "cpu")


@pytest.fixture(scope="module")
def interrupted_int8_job(encoder, int8_cache, tmp_path_factory):
    """A job on int8 stopped with Ctrl-C half-way, a second run tried meanwhile, then the same command again.

    Run once for the tests below: (a) a run into the same output while the first is running (stopped
    with SIGSTOP, so that it holds the job); (b) Ctrl-C (SIGINT) to the first; (c) the same command
    again, on two processes (torchrun): their number is not part of the job.
    """
    tmp = tmp_path_factory.mktemp("interrupted")
    # 100 chunks: enough that a quiet machine cannot finish them all between the first part and the stop.
    corpus(1000, seed=11).to_csv(tmp / "in.csv", index=False)
    args = ["--chunk-size", "10", "--batch-size", "10", "--no-context", "--backend", "int8"]
    output, result = tmp / "out.csv", {}
    folder = corpus_job.work_dir(output)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_CACHE_DIR", str(int8_cache))
        assert run(encoder, tmp / "in.csv", tmp / "whole.csv", *args[:-2], backend="int8") == 0
        # SIGINT as a terminal sends it: Python turns it into KeyboardInterrupt unless the parent ignores it.
        process = subprocess.Popen(command(encoder, tmp / "in.csv", output, *args), env=_env(), cwd=tmp,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 120
        while not corpus_job.part_path(folder, 0).exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no chunk was finished within 2 minutes"
            time.sleep(0.002)
        process.send_signal(signal.SIGSTOP)
        second = io.StringIO()
        with contextlib.redirect_stderr(second):
            result["second"] = (run(encoder, tmp / "in.csv", output, *args[:-2], backend="int8"), second.getvalue())
        # Ctrl-C while it is stopped: the signal waits and is the first thing it meets when it goes on, so the
        # job cannot finish its last chunks first (it did once on a quiet machine, with SIGCONT sent first).
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGCONT)
        stdout, stderr = process.communicate(timeout=60)
        result["first"] = (process.pid, process.returncode, stderr)
        result["saved"] = len(corpus_job.finished_chunks(folder))
        torchrun = [str(pathlib.Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2"]
        result["resumed"] = subprocess.run([*torchrun, *command(encoder, tmp / "in.csv", output, *args)[1:]],
                                           env=_env(), cwd=tmp, capture_output=True, text=True, timeout=300)
    result["output"], result["whole"] = output, tmp / "whole.csv"
    return result


def test_a_second_run_into_the_same_output_stops_and_names_the_first(interrupted_int8_job):
    status, message = interrupted_int8_job["second"]
    pid = interrupted_int8_job["first"][0]
    assert status == 2, message
    assert "Another run is labelling into" in message and f"process {pid} on {socket.gethostname()}" in message
    assert "started 20" in message  # its start time, ISO 8601


def test_ctrl_c_says_what_is_saved_and_that_the_same_command_resumes(interrupted_int8_job):
    _, status, stderr = interrupted_int8_job["first"]
    assert status == label_corpus.INTERRUPTED, stderr
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("Interrupted")]
    saved = interrupted_int8_job["saved"]
    assert 1 <= saved < 100, f"the interrupt came after {saved} of 100 chunks: not before the end"
    assert f"Interrupted: {saved} finished chunk(s) of 10 rows are saved in " in line
    assert "Run the same command again to go on from there." in line


def test_an_interrupted_int8_job_resumed_on_two_processes_equals_one_uninterrupted_process(interrupted_int8_job):
    resumed = interrupted_int8_job["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "with 2 process(es)" in resumed.stdout and "backend int8" in resumed.stdout
    assert f"resuming after {interrupted_int8_job['saved']} finished chunk(s)" in resumed.stdout
    whole = pd.read_csv(interrupted_int8_job["whole"], keep_default_na=False)
    resumed = pd.read_csv(interrupted_int8_job["output"], keep_default_na=False)
    pd.testing.assert_frame_equal(resumed.drop(columns=PROBS), whole.drop(columns=PROBS), check_exact=True)
    # As with fp32 on two processes: torch's kernels under torchrun (OMP_NUM_THREADS=1) round the
    # near-ties' fp32 scores in the seventh digit.
    np.testing.assert_allclose(resumed[PROBS].to_numpy(), whole[PROBS].to_numpy(), rtol=0, atol=1e-5)
    assert not corpus_job.work_dir(interrupted_int8_job["output"]).exists()


def test_overwrite_deletes_only_what_the_job_made(encoder, tmp_path, capsys):
    corpus(5).to_csv(tmp_path / "in.csv", index=False)
    folder = corpus_job.work_dir(tmp_path / "out.csv")
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert run(encoder, tmp_path / "in.csv", tmp_path / "out.csv", "--overwrite") == 2
    message = capsys.readouterr().err
    assert "notes.txt" in message and "did not make" in message
    assert (folder / "notes.txt").read_text() == "mine"
    (tmp_path / "out.parquet").mkdir()
    (tmp_path / "out.parquet" / "mine.parquet").write_text("a dataset of mine")
    assert run(encoder, tmp_path / "in.csv", tmp_path / "out.parquet", "--overwrite") == 2
    assert "is a folder" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out.parquet").iterdir()] == ["mine.parquet"]
    (folder / "notes.txt").unlink()  # only the job's files (job.json, parts, the lock) are removed at the end
    assert run(encoder, tmp_path / "in.csv", tmp_path / "out.csv", "--overwrite") == 0
    assert not folder.exists() and len(pd.read_csv(tmp_path / "out.csv")) == 5


# ---------------------------------------------------------------- clear errors


def test_a_missing_text_column_names_the_columns_found(encoder, tmp_path, capsys):
    corpus(5).to_csv(tmp_path / "in.csv", index=False)
    assert run(encoder, tmp_path / "in.csv", tmp_path / "out.csv", text_column=None) == 2  # default: text_original
    message = capsys.readouterr().err
    assert "['row_id', 'sentence', 'before', 'after']" in message and "--text-column" in message
    assert not (tmp_path / "out.csv").exists() and not corpus_job.work_dir(tmp_path / "out.csv").exists()


@pytest.mark.parametrize("content, problem", [("", "empty (0 bytes)"), ("row_id,sentence\n", "no rows")])
def test_an_empty_file_is_an_error_that_says_so(encoder, tmp_path, capsys, content, problem):
    (tmp_path / "in.csv").write_text(content, encoding="utf-8")
    assert run(encoder, tmp_path / "in.csv", tmp_path / "out.csv") == 2
    assert problem in capsys.readouterr().err


def test_a_model_folder_of_none_of_the_three_kinds_is_refused(tmp_path, capsys):
    corpus(5).to_csv(tmp_path / "in.csv", index=False)
    # The plain encoder stand-in: a BertModel with no classification head, no adapter, no entailment label.
    assert run(encoder_stand_in(), tmp_path / "in.csv", tmp_path / "out.csv") == 2
    assert "none of the three kinds" in capsys.readouterr().err
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model")
    assert run(tmp_path / "notes", tmp_path / "in.csv", tmp_path / "out.csv") == 2
    message = capsys.readouterr().err
    assert "none of the three kinds" in message and "readme.txt" in message


def test_nothing_the_user_made_is_overwritten(encoder, tmp_path, capsys):
    corpus(5).to_csv(tmp_path / "in.csv", index=False)
    before = (tmp_path / "in.csv").read_bytes()
    assert run(encoder, tmp_path / "in.csv", tmp_path / "in.csv") == 2
    assert "is the input file" in capsys.readouterr().err
    (tmp_path / "out.csv").write_text("my own notes\n")
    assert run(encoder, tmp_path / "in.csv", tmp_path / "out.csv") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "out.csv").read_text() == "my own notes\n" and (tmp_path / "in.csv").read_bytes() == before
    assert run(encoder, tmp_path / "in.csv", tmp_path / "out.csv", "--overwrite") == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == 5


def test_a_spreadsheets_byte_order_mark_is_not_part_of_a_column_name(tmp_path):
    (tmp_path / "in.csv").write_bytes("\ufeffsentence,note\nWe will buy ships.,x\n".encode("utf-8"))
    assert corpus_job.input_columns(tmp_path / "in.csv") == ["sentence", "note"]
    assert next(corpus_job.read_chunks(tmp_path / "in.csv", 10)).column_names == ["sentence", "note"]


def test_bytes_that_are_not_utf8_deep_in_the_file_stop_with_their_line_named(tmp_path):
    lines = ["sentence"] + [f"Sentence number {i}." for i in range(30)]
    (tmp_path / "in.csv").write_bytes(("\n".join(lines) + "\n").encode("utf-8") + "Caf\xe9 policy.\n".encode("latin-1"))
    with pytest.raises(corpus_job.CorpusError, match=r"not UTF-8 text from line 32 on: b'Caf\\xe9 policy"):
        list(corpus_job.read_chunks(tmp_path / "in.csv", 10))


def test_context_columns_without_context_is_refused_rather_than_ignored(encoder, tmp_path, capsys):
    corpus(5).to_csv(tmp_path / "in.csv", index=False)
    assert run(encoder, tmp_path / "in.csv", tmp_path / "out.csv", "--no-context", "--context-columns", "before",
               "after") == 2
    assert "would be ignored" in capsys.readouterr().err


def test_the_labelling_task_comes_from_the_task_description(monkeypatch):
    from utils.corpus_models import task_labels

    monkeypatch.delenv("COURSE_TASK", raising=False)
    assert task_labels().labels == tuple(utils.load_task("manifesto-military").labels)
    protectionism = task_labels("manifesto-protectionism")
    assert set(protectionism.labels) == {"Protectionism: Positive", "Protectionism: Negative", "Other"}
    assert set(protectionism.hypotheses) == set(protectionism.labels) == set(protectionism.answers)
    monkeypatch.setenv("COURSE_TASK", "manifesto-protectionism")
    assert task_labels().labels == protectionism.labels
