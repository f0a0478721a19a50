"""`python -m utils.study` (`make study`): run the grid with a progress bar, resume what is stored,
then write the tables, figures, reports, model card and replication bundle.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import sys
import time
from typing import Sequence

from .options import FINE_TUNED, StudyArguments, StudyError, as_argv, parse, resolve


def _folder(r, data) -> pathlib.Path:
    from ..metrics import results_dir

    return pathlib.Path(r.output_dir) if r.output_dir else results_dir() / f"study-{data.task.name}"


def _device() -> str:
    from ..device import device, gpu_info

    gpu = gpu_info()
    return f"{gpu['name']} ({gpu['memory_gib']} GiB)" if gpu else f"{device()} ({os.cpu_count()} cores)"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def run_cell(cell, train, data, r, cache):
    """Run one cell with its approach's recipe (approaches.py)."""
    from . import approaches

    if cell.approach == "tfidf":
        return approaches.run_tfidf(train, data.test, cell.seed)
    if cell.approach == "embeddings":
        return approaches.run_embeddings(train, data.test, cell.seed, cache)
    if cell.approach == "encoder":
        return approaches.run_encoder(train, data.test, cell.seed, r, len(data.task.labels), data.task.id2label)
    return approaches.run_nli(train, data.test, cell.seed, r, data.task)


def run_study(args: StudyArguments, argv: Sequence[str] | None = None) -> pathlib.Path:
    """Run (or resume) the study the options describe and write its folder; with --dry-run only print the grid."""
    from tqdm.auto import tqdm

    from ..device import device
    from . import analysis, approaches, grid, replicate, report, writeup

    r = resolve(args)
    data = grid.load_study_data(r)
    cells = grid.grid(r, data)
    folder = _folder(r, data)
    hashes = replicate.data_hashes(data.files)
    sizes_by = {a: sorted({c.size for c in cells if c.approach == a}) for a in dict.fromkeys(c.approach for c in cells)}
    grid_text = writeup.grid_summary(cells, sizes_by, r.seeds)
    configs = {a: approaches.approach_config(r, a, data.task) for a in sizes_by}
    samples = {(c.size, c.seed): grid.train_rows(data, c) for c in cells}
    keys = {c: grid.cell_key(configs[c.approach], samples[(c.size, c.seed)].index.to_numpy(),
                             data.test.index.to_numpy(), hashes) for c in cells}
    stored = {c: grid.load_cell(folder, c, keys[c]) for c in cells}
    n_labels, dev = len(data.task.labels), device()
    estimate = {c: approaches.estimate_seconds(c.approach, c.size, len(data.test), r, n_labels, dev) for c in cells}
    if any(a in FINE_TUNED for a in sizes_by) and r.max_size_finetune:
        grid_text += f"\n(--max-size-finetune {r.max_size_finetune}: the fine-tuned approaches stop at that size)"
    todo = [c for c in cells if stored[c] is None]
    embedding_texts = {t for c in todo if c.approach == "embeddings" for t in samples[(c.size, c.seed)]["text"]}
    if embedding_texts:
        embedding_texts |= set(data.test["text"])
    embed_seconds = len(embedding_texts) * approaches.EMBED_PRIOR["cuda" if dev == "cuda" else "cpu"]
    total = embed_seconds + sum(estimate[c] for c in todo)
    print(f"Study of {data.task.name} in {r.mode} mode on {_device()}: {len(data.pool)} training rows, "
          f"{len(data.test)} test rows\n{grid_text}\n{len(cells) - len(todo)} cell(s) stored in {folder}, "
          f"{len(todo)} to run, estimated {_minutes(total)} (a rough prior; the progress "
          "bar corrects it as cells finish)", flush=True)
    if r.dry_run:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.json").write_text(json.dumps({"task": data.task.name, "mode": r.mode,
                                                   "options": dataclasses.asdict(r.args)}, indent=1), encoding="utf-8")
    cache = approaches.EmbeddingCache(folder, r)
    if embedding_texts:
        print(f"Embedding {len(embedding_texts)} texts once for every embeddings cell...", flush=True)
        cache.prepare(sorted(embedding_texts))
    measured, guessed = {}, {}
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), unit="cell", desc="study", dynamic_ncols=True)
    for index, cell in enumerate(todo):
        bar.set_postfix_str(f"{cell.name} | about {_minutes(_eta(todo[index:], estimate, measured, guessed))} left")
        train = samples[(cell.size, cell.seed)]
        started = time.perf_counter()
        result = run_cell(cell, train, data, r, cache)
        wall = time.perf_counter() - started  # for the ETA: an embeddings cell's cost counts its share of the pass
        from ..metrics import classification_metrics

        metrics = classification_metrics(data.test["label"].to_numpy(), result.predictions)
        stored[cell] = {"approach": cell.approach, "size": cell.size, "seed": cell.seed, "key": keys[cell],
                        "f1_macro": float(metrics["f1_macro"]), "metrics": {k: float(v) for k, v in metrics.items()},
                        "predictions": result.predictions, "seconds": result.seconds,
                        "gpu_memory_gib": result.gpu_memory_gib, "details": result.details,
                        "config": configs[cell.approach], "train_index": [int(i) for i in train.index]}
        grid.save_cell(folder, cell, stored[cell])
        measured[cell.approach] = measured.get(cell.approach, 0.0) + wall
        guessed[cell.approach] = guessed.get(cell.approach, 0.0) + estimate[cell]
        bar.update(1)
    bar.set_postfix_str("done")
    bar.close()

    finished = [stored[c] for c in cells]
    result = analysis.analyse(finished, data, r, grid.skipped_approaches(r, data))
    (folder / "tables").mkdir(exist_ok=True)
    for name, table in result.tables.items():
        table.to_csv(folder / "tables" / f"{name}.csv", index=False)
    versions = replicate.library_versions()
    methods = writeup.methods(result, data, r, versions, _device())
    argv = list(argv) if argv is not None else as_argv(args)
    command = replicate.commands(folder, r.task, [a for a in argv if a not in ("--task", r.task)], r.mode)
    figures = report.figures(result, r)
    report.write_reports(folder, f"Your own study: {data.task.name}",
                         writeup.report_blocks(result, data, r, figures, methods, command, grid_text))
    (folder / "methods.md").write_text(methods + "\n", encoding="utf-8")
    (folder / "model_card").mkdir(exist_ok=True)
    (folder / "model_card" / "README.md").write_text(report.model_card(result, data, r, methods, versions),
                                                     encoding="utf-8")
    splits = {"test": [int(i) for i in data.test.index],
              "train": {f"n={n} seed={s}": [int(i) for i in rows.index] for (n, s), rows in samples.items()}}
    replicate.write_bundle(folder, r, data, hashes, splits, [a for a in argv if a not in ("--task", r.task)])
    print(writeup.answer(result, data, r))
    print(f"Wrote {folder / 'report.html'} (and report.md, tables/, model_card/README.md, replication/).")
    return folder


def _eta(remaining, estimate, measured, guessed) -> float:
    """Seconds left: each cell's prior, scaled by how its approach's finished cells compared with theirs."""
    overall = (sum(measured.values()) / sum(guessed.values())) if guessed and sum(guessed.values()) else 1.0
    total = 0.0
    for cell in remaining:
        scale = measured[cell.approach] / guessed[cell.approach] if guessed.get(cell.approach) else overall
        total += estimate[cell] * scale
    return total if math.isfinite(total) else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run, replicate, or print a clear error (exit status 2) on bad options or data."""
    from ..data import DataError
    from ..task import TaskError
    from .replicate import replicate

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(argv)
        if args.replicate:
            return replicate(args.replicate, args.output_dir)
        run_study(args, argv)
    except (StudyError, DataError, TaskError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nStopped. Every finished cell is stored: run the same command again to go on where it stopped.",
              file=sys.stderr)
        return 130
    return 0
