"""Label a large corpus with a model the course saved: one command, batched, resumable, many processes.

    python -m utils.label_corpus --model results/3_tune_bert/model --input speeches.csv \\
        --text-column text_original --output labelled.parquet

The model is one of the course's three kinds, found from its folder (or forced with --kind):

- ``lora``: a LoRA adapter of a generative LLM (notebook 7; its folder has adapter_config.json),
  scored by the log-likelihood of each label's answer word (utils.llm.label_log_likelihoods);
- ``nli``: a BERT-NLI model, zero-shot or fine-tuned (notebook 4; its config has an "entailment"
  label), which reads each text with each label's hypothesis (utils.nli);
- ``encoder``: a fine-tuned classifier (notebook 3's results/3_tune_bert/model).

The texts are prepared as in training (utils.data.prepare_texts: with --context, the default, the
quote is marked as such and its neighbouring sentences, given by --context-columns, are added).
The output repeats every input column and adds `predicted_label` and one `prob_<label>` column per
label: the model's probabilities (encoder), each hypothesis's entailment probability (nli: these do
not add up to 1), or the answer words' likelihoods normalised over the labels (lora).

The input is read chunk by chunk (memory stays flat), each chunk sorted by length so that batches
need little padding, and each finished chunk is saved at once: killed and started again with the
same command, the job goes on after the last finished chunk. utils.corpus_job holds the file side
(chunks, part files, the job's identity, the merge), utils.corpus_models the model side.

On a CPU an encoder or NLI model runs by default (--backend auto) as an int8 model in ONNX Runtime
(utils.onnx_int8: exported once and cached, about 3 times the speed of fp32 torch); the few texts
whose two best probabilities are closer than --near-tie, where int8 could flip the label, are
labelled again in fp32 torch. --backend torch keeps fp32 torch throughout. A model that does not
export falls back to torch with a one-line reason. The backend is part of the job: a job resumes
with the one it started with.

Stopped with Ctrl-C, the command says what is saved and exits with status 130; the same command
goes on from there. A second run into the same output while one is running stops at once, naming
the process that holds the job.

Many processes, one engine: under torch.distributed every process cuts each chunk into the same
batches and labels its share of them, and process 0 writes the parts, so the output is the same
whatever the number of processes:

    accelerate launch --num_processes 4 -m utils.label_corpus ...     # 4 GPUs
    torchrun --nproc_per_node 2 -m utils.label_corpus ...             # 2 CPU processes
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from . import corpus_job
from .corpus_job import CorpusError
from .corpus_models import (BACKENDS, KINDS, Share, choose_backend, detect_kind, load_scorer, resolve_model,
                            task_labels)

PREDICTED = "predicted_label"
PROB_PREFIX = "prob_"
COURSE_TEXT, COURSE_BEFORE, COURSE_AFTER = "text_original", "text_preceding", "text_following"
BACKEND_NAMES = {"torch": "torch", "int8": "int8 (ONNX Runtime)"}
# int8 moves most texts' probabilities by about 0.01, a few by up to 0.3 (real sentences, see
# benchmarks/label_corpus_speed.py): closer calls than 0.2, a few percent of the texts, are labelled
# again in fp32, which kept 99.6 % of 2770 real sentences' labels (98 % without).
NEAR_TIE = 0.2
INTERRUPTED = 130  # the exit status of a command stopped with Ctrl-C (128 + SIGINT), as shells report it


# ---------------------------------------------------------------- the command


def course_frame(chunk: pd.DataFrame, text_column: str, context_columns: Sequence[str] | None) -> pd.DataFrame:
    """The chunk in the course's columns (text_original, text_preceding, text_following) that
    utils.data and utils.llm prepare texts from; missing context is empty."""
    def column(name: str | None) -> pd.Series:
        if name is None:
            return pd.Series([""] * len(chunk), index=chunk.index, dtype=object)
        return chunk[name].astype(object).where(chunk[name].notna(), "").astype(str)

    before, after = context_columns if context_columns else (None, None)
    return pd.DataFrame({COURSE_TEXT: column(text_column), COURSE_BEFORE: column(before),
                         COURSE_AFTER: column(after)})


def check_columns(columns: list[str], path: pathlib.Path, text_column: str,
                  context_columns: Sequence[str] | None, labels: Sequence[str]) -> None:
    """Stop before any model is loaded when a named column is missing or an output column exists."""
    missing = [c for c in [text_column, *(context_columns or [])] if c not in columns]
    if missing:
        raise CorpusError(f"{path} has no column(s) {missing}; its columns are {columns}. Name the column of the "
                          "sentences with --text-column (and the context with --context-columns BEFORE AFTER).")
    taken = [c for c in [PREDICTED, *(PROB_PREFIX + label for label in labels)] if c in columns]
    if taken:
        raise CorpusError(f"{path} already has column(s) {taken}, which the output adds. Is it the output of an "
                          "earlier run? Rename those columns, or label the original file.")


def _default_context_columns(columns: list[str], context: bool) -> list[str] | None:
    # A file in the course's format gives its neighbouring sentences as training did.
    if context and COURSE_BEFORE in columns and COURSE_AFTER in columns:
        return [COURSE_BEFORE, COURSE_AFTER]
    return None


def _set_threads(requested: int | None, local_processes: int) -> int:
    """Torch threads per process on a CPU: all cores shared out between the local processes."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = requested or max(1, cores // local_processes)
    torch.set_num_threads(threads)
    return threads


def label_corpus(args: argparse.Namespace) -> pathlib.Path | None:
    """Run the labelling job `args` describes; return the output path (on process 0; None elsewhere)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object

    source, output = pathlib.Path(args.input), pathlib.Path(args.output)
    if output.resolve() == source.resolve():
        raise CorpusError(f"--output {output} is the input file: choose another name, the input is never overwritten.")
    corpus_job.file_format(output, "output")
    task = task_labels(args.task)
    columns = corpus_job.input_columns(source)
    context_columns = args.context_columns or _default_context_columns(columns, args.context)  # None without context
    model = resolve_model(args.model)
    kind = detect_kind(model) if args.kind == "auto" else args.kind
    check_columns(columns, source, args.text_column, context_columns,
                  task.labels if kind != "encoder" else [])  # an encoder's labels are only known once loaded
    job = {**corpus_job.input_fingerprint(source), **corpus_job.model_fingerprint(model), "kind": kind,
           "text_column": args.text_column, "context_columns": context_columns, "context": args.context,
           "chunk_size": args.chunk_size, "max_length": args.max_length, "labels": list(task.labels),
           "hypotheses": task.hypotheses if kind == "nli" else None,
           "answers": task.answers if kind == "lora" else None,
           "instruction": task.instruction if kind == "lora" else None}
    # The number of processes is not part of the job, nor (with torch) the batch size: they change
    # the speed, not the labels, so a job may resume with other values.

    state = PartialState(cpu=not torch.cuda.is_available())
    main = state.is_main_process
    if state.num_processes > 1:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the processes share the cores already
    threads = _set_threads(args.threads, int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes))) \
        if state.device.type == "cpu" else None
    # The backend changes the labels of near-ties, so it is part of the job: chosen before anything
    # is loaded (auto: int8 on a CPU where ONNX Runtime is installed), corrected below on a fallback.
    job["backend"], note = choose_backend(args.backend, kind, state.device.type)
    _int8_settings_in_job(job, args)
    # Read-only checks on every process, so that all stop with the same message; then one writer.
    corpus_job.check_job(output, job, args.overwrite)
    folder = corpus_job.work_dir(output)
    state.wait_for_everyone()
    lock, status = None, "new"

    def take_lock() -> None:
        nonlocal lock, status
        lock = corpus_job.lock_job(output)
        status = corpus_job.check_job(output, job, args.overwrite)  # again: another run may have ended meanwhile

    try:
        _on_main(state, take_lock)
        done = corpus_job.finished_chunks(folder)  # under the lock: no other run adds or removes parts now
        scorer = load_scorer(model, kind, state.device, args.batch_size, args.max_length, args.context, task,
                             backend=job["backend"], threads=threads, fallback=args.backend == "auto",
                             report=(lambda line: print(line, flush=True)) if main else (lambda line: None),
                             share=Share(state.process_index, state.num_processes,
                                         lambda obj: gather_object([obj])), recheck_gap=args.near_tie)
        note = scorer.note or note
        job["backend"] = scorer.backend
        _int8_settings_in_job(job, args)
        # Under the lock, once more with the backend in use: a job that started on int8 does not go on in torch.
        _on_main(state, lambda: (corpus_job.check_job(output, job, args.overwrite), corpus_job.start_job(output, job)))
        if kind == "encoder":
            check_columns(columns, source, args.text_column, context_columns, scorer.labels)
        if main:
            where = f"{state.num_processes} process(es) on {state.device.type}" + (f", {threads} thread(s) each"
                                                                                    if threads else "")
            text = f"{args.text_column}" + (f" with context {'/'.join(context_columns)}" if context_columns else "") \
                + ("" if args.context else " (sentence alone, as CONTEXT=False)")
            if note:
                print(f"backend torch: {note}.", flush=True)
            print(f"Labelling {source} ({text}) with {kind} model {args.model} on {where}, backend "
                  f"{BACKEND_NAMES[scorer.backend]}; "
                  + (f"resuming after {len(done)} finished chunk(s)." if status == "resume" else "new job."),
                  flush=True)
        return _label_chunks(args, state, scorer, source, output, folder, done, context_columns)
    finally:
        if lock is not None:
            lock.release()
            if not (folder / corpus_job.JOB_FILE).exists():  # stopped before the job began: leave no folder
                corpus_job.remove_work_dir(folder)


def _int8_settings_in_job(job: dict, args: argparse.Namespace) -> None:
    """With int8 the batch size is part of the job (a batch's activations share one scale, so another
    batch size moves a few probabilities), and so is --near-tie. With torch neither changes a label."""
    int8 = job["backend"] == "int8"
    job["batch_size"], job["near_tie"] = (args.batch_size, args.near_tie) if int8 else (None, None)


def _on_main(state, action) -> None:
    """Run `action` on process 0 only; when it raises CorpusError, every process raises it (none waits for ever)."""
    from accelerate.utils import broadcast_object_list

    message = [None]
    if state.is_main_process:
        try:
            action()
        except CorpusError as error:
            message = [str(error)]
    if state.num_processes > 1:
        message = broadcast_object_list(message)
    if message[0] is not None:
        raise CorpusError(message[0])


def _label_chunks(args: argparse.Namespace, state, scorer, source: pathlib.Path, output: pathlib.Path,
                  folder: pathlib.Path, done: set[int], context_columns: list[str] | None) -> pathlib.Path | None:
    """Label every chunk not in `done`, save each as a part, merge the parts (process 0 writes)."""
    from tqdm.auto import tqdm

    main = state.is_main_process
    bar = tqdm(total=corpus_job.count_rows(source), unit=" sentences", unit_scale=True, disable=not main,
               desc="labelling", dynamic_ncols=True)
    n_chunks, n_new, started = 0, 0, time.perf_counter()
    for index, chunk in enumerate(corpus_job.read_chunks(source, args.chunk_size)):
        n_chunks = index + 1
        if index in done:
            bar.update(chunk.num_rows)
            continue
        frame = chunk.select([args.text_column, *(context_columns or [])]).to_pandas()
        # Every process scores its share of the chunk's batches and gets the whole chunk's probabilities.
        probabilities = scorer.score(course_frame(frame, args.text_column, context_columns))
        if main:
            predicted = np.asarray(scorer.labels, dtype=object)[probabilities.argmax(axis=1)]
            table = chunk.append_column(PREDICTED, pa.array(predicted, pa.string()))
            for j, label in enumerate(scorer.labels):
                table = table.append_column(PROB_PREFIX + label, pa.array(probabilities[:, j], pa.float64()))
            corpus_job.write_part(folder, index, table)
        n_new += chunk.num_rows
        bar.update(chunk.num_rows)
    bar.close()
    seconds = time.perf_counter() - started
    state.wait_for_everyone()
    if not main:
        return None
    if n_chunks == 0:
        raise CorpusError(f"{source} has no rows to label.")
    rows = corpus_job.merge_parts(output, n_chunks)
    rate = n_new / seconds if seconds > 0 else float("nan")
    again = (f" ({scorer.stats['again']} near-tie(s) of {scorer.stats['texts']} labelled again in fp32)"
             if scorer.backend == "int8" and args.near_tie > 0 else "")
    print(f"Labelled {n_new} new sentences in {seconds:.1f} s ({rate:.1f} sentences/s) with "
          f"{state.num_processes} process(es){again}; wrote {rows} rows to {output}.", flush=True)
    return output


def build_parser() -> argparse.ArgumentParser:
    """The command-line arguments of `python -m utils.label_corpus`."""
    parser = argparse.ArgumentParser(prog="python -m utils.label_corpus", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model", required=True, help="model folder (save_pretrained) or hub id")
    parser.add_argument("--kind", default="auto", choices=("auto", *KINDS),
                        help="auto (default): a LoRA adapter if the folder has adapter_config.json, NLI if the "
                             "model has an 'entailment' label, else a fine-tuned encoder")
    parser.add_argument("--input", required=True, help="a .csv or .parquet file with one sentence per row")
    parser.add_argument("--output", required=True, help="the .csv or .parquet file to write (never the input)")
    parser.add_argument("--task", help="the task whose labels the model predicts: a built-in name or a task file "
                        "(default: COURSE_TASK, else manifesto-military)")
    parser.add_argument("--text-column", default=COURSE_TEXT, help=f"column of the sentences (default {COURSE_TEXT})")
    parser.add_argument("--context-columns", nargs=2, metavar=("BEFORE", "AFTER"),
                        help="columns of the sentence before and after (default: text_preceding text_following "
                             "when the file has them, else no context)")
    parser.add_argument("--context", action=argparse.BooleanOptionalAction, default=True,
                        help="prepare texts as the notebooks do with CONTEXT=True (default) or False: use the "
                             "setting the model was trained with")
    parser.add_argument("--batch-size", type=int, default=32, help="texts (nli: text-hypothesis pairs) per forward pass")
    parser.add_argument("--chunk-size", type=int, default=4096,
                        help="rows read, labelled and saved at a time: the unit of resuming (default 4096)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per text for encoder/nli (longer ones are "
                                                                    "cut, as in training; default 256)")
    parser.add_argument("--threads", type=int, help="torch threads per process on a CPU (default: the cores shared "
                                                    "out between the processes on this machine)")
    parser.add_argument("--backend", default="auto", choices=("auto", *BACKENDS),
                        help="what runs an encoder or NLI model: auto (default) int8 ONNX Runtime on a CPU, else "
                             "torch; torch: the model as saved (fp32 on a CPU); int8: ONNX Runtime or an error")
    parser.add_argument("--near-tie", type=float, default=NEAR_TIE, metavar="GAP",
                        help="int8 only: a text whose two best probabilities are less than GAP apart is labelled "
                             f"again in fp32 torch, where int8 could flip its label (default {NEAR_TIE}; 0: never)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse the arguments, run the job, print a clear error (exit status 2) on bad input."""
    args = build_parser().parse_args(argv)
    if not 0 <= args.near_tie <= 1:
        print(f"error: --near-tie is a gap between two probabilities, from 0 to 1; got {args.near_tie}.",
              file=sys.stderr)
        return 2
    for name in ("batch_size", "chunk_size", "max_length", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"error: --{name.replace('_', '-')} must be at least 1, got {value}.", file=sys.stderr)
            return 2
    if args.context_columns and not args.context:
        print("error: --context-columns with --no-context: the context would be ignored. Drop one of the two.",
              file=sys.stderr)
        return 2
    rank = os.environ.get("RANK")
    try:
        label_corpus(args)
    except CorpusError as error:
        print(f"error{f' (process {rank})' if rank not in (None, '0') else ''}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if rank in (None, "0"):  # one line, not one per process
            folder = corpus_job.work_dir(pathlib.Path(args.output))
            saved = len(corpus_job.finished_chunks(folder))
            kept = (f"{saved} finished chunk(s) of {args.chunk_size} rows are saved in {folder}" if saved else
                    "no chunk was finished yet, so nothing is kept")
            print(f"\nInterrupted: {kept}. Run the same command again to go on from there.", file=sys.stderr,
                  flush=True)
        return INTERRUPTED
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # a clean exit, without torch's warning about a live group
    return 0


if __name__ == "__main__":
    sys.exit(main())
