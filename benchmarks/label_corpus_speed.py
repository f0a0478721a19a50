"""How fast does `python -m utils.label_corpus` label sentences, against a beginner's pipeline loop?

    COURSE_MODE=ci .venv/bin/python benchmarks/label_corpus_speed.py            # 10-20 minutes on 2 shared cores
    COURSE_MODE=ci .venv/bin/python benchmarks/label_corpus_speed.py --sentences 5000 --repeats 1

A benchmark, not a test: it prints figures, and checks nothing but that the approaches agree.
On the offline encoder (all-MiniLM-L6-v2 with a new 3-label head: speed does not depend on
training) and synthetic sentences whose lengths follow the course data's sentences, it measures
sentences per second of

1. a plain `pipeline("text-classification")` called once per sentence, as a beginner writes it
   (on a sample of the sentences, median of --repeats runs: its cost per sentence is constant);
2. the command with one process, using all cores (torch threads = cores);
3. the command with N processes under torchrun (default 2), cores shared out: 1 thread each on 2 cores;
4. the command with one process and one thread, to tell apart what batching and processes each bring.

The command's rate is its own count (labelled sentences / seconds from the first chunk to the
last): start-up (imports, model loading, about 10 s) is reported apart, as the wall time.
The machine's load (from /proc/loadavg) is printed before and after: on a shared machine the
figures move with what else runs.
"""

from __future__ import annotations

import argparse
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

RATE = re.compile(r"Labelled (\d+) new sentences in ([\d.]+) s")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, and the number of cores, as one line."""
    with open("/proc/loadavg", encoding="ascii") as f:
        one, five, fifteen = f.read().split()[:3]
    return f"load average {one} / {five} / {fifteen} (1 / 5 / 15 min) on {os.cpu_count()} cores"


def synthetic_sentences(n: int, seed: int = 0) -> list[str]:
    """`n` sentences built from the course data's sentences: each takes the length (in words) of a real
    sentence, and a third of its words are swapped for words drawn from all the sentences."""
    frames = [pd.read_csv(path, dtype=str, keep_default_na=False)
              for path in sorted((ROOT / "data" / "manifesto_military").glob("*.csv"))]
    real = [text for frame in frames for column in ("text_original", "text_preceding", "text_following")
            for text in frame[column] if text.strip()]
    words = [word for text in real for word in text.split()]
    rng = np.random.default_rng(seed)
    sentences = []
    for template in rng.choice(real, size=n):
        tokens = template.split()
        swap = rng.random(len(tokens)) < 1 / 3
        sentences.append(" ".join(rng.choice(words) if s else t for t, s in zip(tokens, swap)))
    return sentences


def save_model(folder: pathlib.Path) -> pathlib.Path:
    """The offline encoder with a fresh 3-label head, saved as notebook 3 saves its model."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from utils.label_corpus import task_labels
    from utils.modes import encoder_stand_in

    labels = task_labels().labels
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder_stand_in(), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(encoder_stand_in()).save_pretrained(folder)
    return folder


def pipeline_loop(model: pathlib.Path, sentences: list[str], threads: int) -> tuple[float, list[str]]:
    """Seconds for one pipeline call per sentence, and the labels it gave."""
    import torch
    from transformers import pipeline

    torch.set_num_threads(threads)
    classify = pipeline("text-classification", model=str(model), device="cpu")
    classify(sentences[0])  # the first call sets things up: not part of the per-sentence cost
    started = time.perf_counter()
    labels = [classify(sentence)[0]["label"] for sentence in sentences]
    return time.perf_counter() - started, labels


def command(model: pathlib.Path, source: pathlib.Path, output: pathlib.Path, processes: int, threads: int,
            batch_size: int) -> dict:
    """Run the command (under torchrun for several processes); its own rate, and the wall time."""
    args = ["-m", "utils.label_corpus", "--model", str(model), "--input", str(source), "--output", str(output),
            "--text-column", "text", "--no-context", "--batch-size", str(batch_size), "--threads", str(threads),
            "--overwrite"]
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
    found = RATE.search(result.stdout)
    labelled, seconds = int(found.group(1)), float(found.group(2))
    return {"rate": labelled / seconds, "wall": wall, "labels": pd.read_csv(output)["predicted_label"].tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=20_000)
    parser.add_argument("--pipeline-sentences", type=int, default=300,
                        help="sentences the pipeline loop labels per repeat (its rate does not depend on the total)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the pipeline loop (median reported)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("COURSE_MODE", "ci")
    cores = len(os.sched_getaffinity(0))
    print(f"before: {load_average()}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        model = save_model(tmp / "model")
        sentences = synthetic_sentences(args.sentences)
        pd.DataFrame({"text": sentences}).to_csv(tmp / "corpus.csv", index=False)
        words = pd.Series([len(s.split()) for s in sentences])
        print(f"{len(sentences)} synthetic sentences, words per sentence: median {words.median():.0f}, "
              f"90th percentile {words.quantile(0.9):.0f}, max {words.max()}", flush=True)

        sample = sentences[:args.pipeline_sentences]
        loop_rates, loop_rates_1 = [], []
        for _ in range(args.repeats):
            seconds, loop_labels = pipeline_loop(model, sample, threads=cores)
            loop_rates.append(len(sample) / seconds)
            seconds, _ = pipeline_loop(model, sample, threads=1)
            loop_rates_1.append(len(sample) / seconds)
        loop, loop_1 = statistics.median(loop_rates), statistics.median(loop_rates_1)
        print(f"pipeline loop: {loop:.1f} sentences/s with {cores} threads, {loop_1:.1f} with 1 thread "
              f"(medians of {args.repeats} x {len(sample)} sentences)", flush=True)

        one = command(model, tmp / "corpus.csv", tmp / "one.csv", 1, cores, args.batch_size)
        print(f"command, 1 process x {cores} threads: {one['rate']:.1f} sentences/s ({one['wall']:.0f} s wall)", flush=True)
        many = command(model, tmp / "corpus.csv", tmp / "many.csv", args.processes, max(1, cores // args.processes),
                       args.batch_size)
        print(f"command, {args.processes} processes x {max(1, cores // args.processes)} thread(s): "
              f"{many['rate']:.1f} sentences/s ({many['wall']:.0f} s wall)", flush=True)
        single = command(model, tmp / "corpus.csv", tmp / "single.csv", 1, 1, args.batch_size)
        print(f"command, 1 process x 1 thread: {single['rate']:.1f} sentences/s ({single['wall']:.0f} s wall)",
              flush=True)

        def agreement(a: list[str], b: list[str]) -> str:
            return f"{np.mean([x == y for x, y in zip(a, b)]):.2%}"

        # An untrained head gives near-equal probabilities, so rounding may flip a rare near tie.
        print(f"\nsame labels: 1 process vs pipeline loop {agreement(one['labels'], loop_labels)} (of {len(sample)}), "
              f"vs {args.processes} processes {agreement(one['labels'], many['labels'])}, "
              f"vs 1 thread {agreement(one['labels'], single['labels'])}")

    table = pd.DataFrame({"sentences/s": {
        f"pipeline loop ({cores} threads)": loop, "pipeline loop (1 thread)": loop_1,
        f"command, 1 process x {cores} threads": one["rate"], "command, 1 process x 1 thread": single["rate"],
        f"command, {args.processes} processes x {max(1, cores // args.processes)} thread(s)": many["rate"]}})
    print("\n" + table.round(1).to_string())
    print(f"\ncommand 1 process / pipeline loop (both {cores} threads): {one['rate'] / loop:.2f}x")
    print(f"command 1 process / pipeline loop (both 1 thread):        {single['rate'] / loop_1:.2f}x")
    print(f"{args.processes} processes / 1 process x {cores} threads:            {many['rate'] / one['rate']:.2f}x")
    print(f"{args.processes} processes / 1 process x 1 thread:             {many['rate'] / single['rate']:.2f}x")
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
