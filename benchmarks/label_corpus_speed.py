"""How fast does `python -m utils.label_corpus` label sentences: pipeline loop, fp32 torch, int8?

    COURSE_MODE=ci .venv/bin/python benchmarks/label_corpus_speed.py              # about 10 minutes on 2 shared cores
    COURSE_MODE=ci .venv/bin/python benchmarks/label_corpus_speed.py --sentences 500 --repeats 1 --no-pipeline

A benchmark, not a test: it prints figures. The model is the offline encoder stand-in
(all-MiniLM-L6-v2, 6 layers, real size) with a classification head fitted to real labels (a logistic
regression on its fp32 pooled output): an untrained head makes every text a near-tie, and no
quantised model would keep its labels. The sentences are real: the Manifesto military training file
in ../shared/data/manifesto/ when it is there (read in place, never copied), else the repo's slices in
data/manifesto_military/ (synthetic, few). The first --head-rows fit the head; the next --sentences
are the corpus, whose gold labels give the F1 macro change.

1. Candidates for int8, in this process, one thread, same texts and batch size as the command,
   median of --repeats: fp32 torch; torch's own int8 (torch.ao dynamic quantisation of the linear
   layers); ONNX Runtime int8 (utils.onnx_int8) alone; and ONNX Runtime int8 with near-ties labelled
   again in fp32 (what the command does).
2. The command with fp32 torch and with int8: 1 process with 1 and with all threads, N processes
   (torchrun) of 1 thread; texts/s is the command's own count (labelled texts / seconds from the
   first chunk to the last), median of --repeats runs; start-up (imports, loading) is apart.
3. Optionally (default on) a plain `pipeline("text-classification")` loop, one call per sentence.

The machine's load (from /proc/loadavg) is printed before and after: on a shared machine the
figures move with what else runs, so compare ratios from one run. The last line compares the
command's int8 and fp32 runs on 1 process of 1 thread, the setting least moved by other jobs.
"""

from __future__ import annotations

import argparse
import copy
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The command's own rate: labelled texts / seconds from the first chunk to the last (start-up apart).
RATE = re.compile(r"Labelled \d+ new sentences in [\d.]+ s \(([\d.]+) sentences/s\)")
REAL = ROOT.parent / "shared" / "data" / "manifesto" / "df_manifesto_military_train.csv"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, and the number of cores, as one line."""
    with open("/proc/loadavg", encoding="ascii") as f:
        one, five, fifteen = f.read().split()[:3]
    return f"load average {one} / {five} / {fifteen} (1 / 5 / 15 min) on {os.cpu_count()} cores"


def sentences(head_rows: int, n: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(rows to fit the head on, corpus rows, where they come from): real sentences, shuffled once."""
    if REAL.is_file():
        rows, source = pd.read_csv(REAL, dtype=str, keep_default_na=False), f"{REAL.name} (real)"
    else:
        rows = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False)
                          for path in sorted((ROOT / "data" / "manifesto_military").glob("*.csv"))])
        source = "data/manifesto_military slices (synthetic; ../shared/data absent)"
    rows = rows[rows["text_original"].str.strip() != ""].sample(frac=1, random_state=0).reset_index(drop=True)
    head_rows = min(head_rows, len(rows) // 2)
    return rows.iloc[:head_rows], rows.iloc[head_rows:head_rows + n].reset_index(drop=True), source


def save_model(folder: pathlib.Path, train: pd.DataFrame, labels: list[str]) -> pathlib.Path:
    """The offline encoder with its head fitted to `train` (a logistic regression on the pooled output)."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from utils.modes import encoder_stand_in

    tokenizer = AutoTokenizer.from_pretrained(encoder_stand_in())
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder_stand_in(), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}).eval()
    texts, pooled = train["text_original"].tolist(), []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            inputs = tokenizer(texts[start:start + 64], truncation=True, max_length=256, padding=True,
                               return_tensors="pt")
            pooled.append(model.bert(**inputs).pooler_output.numpy())
    head = LogisticRegression(max_iter=2000).fit(np.concatenate(pooled), train["label_text"].map(labels.index))
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(head.coef_, dtype=torch.float32))
        model.classifier.bias.copy_(torch.tensor(head.intercept_, dtype=torch.float32))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def f1_macro(gold: list[str], predicted: list[str], labels: list[str]) -> float:
    """F1 macro over the task's labels (as the course reports it)."""
    from sklearn.metrics import f1_score

    return float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0))


def candidates(model: pathlib.Path, texts: list[str], labels: list[str], batch_size: int, repeats: int,
               near_tie: float) -> dict[str, dict]:
    """Each int8 candidate and fp32 torch on `texts` in this process, one thread: rate and labels."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from utils.corpus_models import _classifier_probabilities, _near_ties_again
    from utils.onnx_int8 import load_int8_classifier

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(model)
    network = AutoModelForSequenceClassification.from_pretrained(model).eval()
    torch_int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(network), {torch.nn.Linear}, dtype=torch.qint8)

    def torch_logits(module):
        def logits(inputs) -> np.ndarray:
            with torch.inference_mode():
                return module(**inputs).logits.float().numpy()
        return logits

    ort = load_int8_classifier(str(model), lambda: network, tokenizer, threads=1, report=lambda line: None)

    def scorer(logits):
        def score(frame: pd.DataFrame) -> np.ndarray:
            return _classifier_probabilities(logits, len(labels), tokenizer, frame["text"].tolist(), None,
                                             batch_size, 256)
        return score

    frame = pd.DataFrame({"text": texts})
    stats = {"texts": 0, "again": 0}
    # What the command does with int8: the same function, near-ties scored again in fp32 torch.
    both = _near_ties_again(scorer(ort.logits), scorer(torch_logits(network)), near_tie, stats)
    runs = {"fp32 torch": lambda: scorer(torch_logits(network))(frame),
            "int8 torch.ao (dynamic)": lambda: scorer(torch_logits(torch_int8))(frame),
            "int8 ONNX Runtime alone": lambda: scorer(ort.logits)(frame),
            f"int8 ONNX Runtime + fp32 near-ties (<{near_tie})": lambda: both(frame)}
    results = {}
    for name, function in runs.items():
        function()  # warm-up: first-call costs are not per-text costs
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = function()
            seconds.append(time.perf_counter() - started)
        results[name] = {"rate": len(texts) / statistics.median(seconds),
                         "labels": [labels[j] for j in result.argmax(axis=1)]}
        print(f"  {name}: {results[name]['rate']:.1f} texts/s", flush=True)
    print(f"  near-ties labelled again in fp32: {stats['again'] / stats['texts']:.1%} of the texts", flush=True)
    return results


def command(model: pathlib.Path, source: pathlib.Path, output: pathlib.Path, processes: int, threads: int,
            batch_size: int, backend: str) -> dict:
    """Run the command (under torchrun for several processes); its own rate, and the wall time."""
    args = ["-m", "utils.label_corpus", "--model", str(model), "--input", str(source), "--output", str(output),
            "--text-column", "text_original", "--no-context", "--batch-size", str(batch_size), "--threads",
            str(threads), "--backend", backend, "--overwrite"]
    if processes == 1:
        argv = [sys.executable, *args]
    else:
        argv = [str(pathlib.Path(sys.executable).with_name("torchrun")), "--nproc_per_node", str(processes), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    return {"rate": float(RATE.search(result.stdout).group(1)), "wall": wall,
            "labels": pd.read_csv(output, dtype=str, keep_default_na=False)["predicted_label"].tolist()}


def pipeline_loop(model: pathlib.Path, texts: list[str], threads: int) -> float:
    """Texts per second of one pipeline call per text."""
    import torch
    from transformers import pipeline

    torch.set_num_threads(threads)
    classify = pipeline("text-classification", model=str(model), device="cpu")
    classify(texts[0])  # the first call sets things up: not part of the per-text cost
    started = time.perf_counter()
    for text in texts:
        classify(text)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=1000, help="corpus rows labelled by each run")
    parser.add_argument("--head-rows", type=int, default=1200, help="rows the classification head is fitted on")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (median reported)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=True,
                        help="also time a plain pipeline loop (on 200 texts)")
    args = parser.parse_args()
    os.environ.setdefault("COURSE_MODE", "ci")
    from utils.label_corpus import NEAR_TIE, task_labels

    cores = len(os.sched_getaffinity(0))
    labels = list(task_labels("manifesto-military").labels)
    print(f"before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        os.environ["COURSE_CACHE_DIR"] = str(tmp / "cache")  # the int8 export is timed apart, never reused
        train, corpus, source = sentences(args.head_rows, args.sentences)
        started = time.perf_counter()
        model = save_model(tmp / "model", train, labels)
        texts, gold = corpus["text_original"].tolist(), corpus["label_text"].tolist()
        corpus[["text_original"]].to_csv(tmp / "corpus.csv", index=False)
        words = pd.Series([len(t.split()) for t in texts])
        print(f"{len(texts)} sentences from {source}, words per sentence: median {words.median():.0f}, 90th "
              f"percentile {words.quantile(0.9):.0f}; head fitted on {len(train)} rows in "
              f"{time.perf_counter() - started:.0f} s", flush=True)

        print(f"\n1. int8 candidates, in-process, 1 thread, batch size {args.batch_size}, median of {args.repeats}:",
              flush=True)
        found = candidates(model, texts, labels, args.batch_size, args.repeats, NEAR_TIE)
        fp32 = found["fp32 torch"]
        rows = []
        for name, result in found.items():
            same = 100 * np.mean([a == b for a, b in zip(result["labels"], fp32["labels"])])
            change = f1_macro(gold, result["labels"], labels) - f1_macro(gold, fp32["labels"], labels)
            rows.append({"candidate": name, "texts/s": result["rate"], "x fp32 torch": result["rate"] / fp32["rate"],
                         "% same labels": same, "F1 change": change})
        print(pd.DataFrame(rows).set_index("candidate").round(3).to_string(), flush=True)

        print(f"\n2. the command, median of {args.repeats} runs, batch size {args.batch_size}:", flush=True)
        settings = [(1, 1), (1, cores), (args.processes, max(1, cores // args.processes))]
        runs: dict[tuple, dict] = {}
        for backend in ("torch", "int8"):
            for processes, threads in settings:
                measured = [command(model, tmp / "corpus.csv", tmp / f"{backend}-{processes}-{threads}.csv", processes,
                                    threads, args.batch_size, backend) for _ in range(args.repeats)]
                runs[backend, processes, threads] = {"rate": statistics.median(m["rate"] for m in measured),
                                                     "wall": statistics.median(m["wall"] for m in measured),
                                                     "labels": measured[-1]["labels"]}
                print(f"  {backend}, {processes} process(es) x {threads} thread(s): "
                      f"{runs[backend, processes, threads]['rate']:.1f} texts/s", flush=True)
        reference = runs["torch", 1, cores]["labels"]
        table = pd.DataFrame([{
            "backend": "fp32 torch" if backend == "torch" else "int8 (ONNX Runtime)",
            "setting": f"{processes} process(es) x {threads} thread(s)", "texts/s": result["rate"],
            "x fp32 same setting": result["rate"] / runs["torch", processes, threads]["rate"],
            "% same labels": 100 * np.mean([a == b for a, b in zip(result["labels"], reference)]),
            "F1 change": f1_macro(gold, result["labels"], labels) - f1_macro(gold, reference, labels),
            "wall s": result["wall"]} for (backend, processes, threads), result in runs.items()])
        print(table.set_index(["backend", "setting"]).round(3).to_string(), flush=True)
        if args.pipeline:
            loop = pipeline_loop(model, texts[:200], cores)
            print(f"\n3. pipeline loop ({cores} threads, one call per text, 200 texts): {loop:.1f} texts/s; the "
                  f"command with fp32 torch is {runs['torch', 1, cores]['rate'] / loop:.2f}x, with int8 "
                  f"{runs['int8', 1, cores]['rate'] / loop:.2f}x", flush=True)
    print(f"\nafter: {load_average()}")
    # One thread: on a shared machine the figures with all threads move with the other jobs' load.
    int8, torch32 = runs["int8", 1, 1], runs["torch", 1, 1]
    same = 100 * np.mean([a == b for a, b in zip(int8["labels"], torch32["labels"])])
    print(f"int8 vs fp32 torch, 1 process: {int8['rate'] / torch32['rate']:.2f}× texts/s, {same:.1f} % same labels")


if __name__ == "__main__":
    main()
