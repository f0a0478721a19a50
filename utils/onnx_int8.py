"""int8 on a CPU: a sequence classifier exported to ONNX, its linear layers quantised, run by ONNX Runtime.

Most of an encoder's time on a CPU goes to the matrix products of its linear layers. Dynamic int8
quantisation stores those weights as 8-bit integers (one scale per output channel) and quantises
each batch's activations on the fly (one scale per batch), so the products run as int8 arithmetic,
about 3 times faster than fp32 here (AVX-512 VNNI) and faster on most CPUs. What it trades: weights
and activations are rounded to 255 levels, so probabilities move, by 0.01 on average and up to about
0.3 on real sentences (a text's batch-mates move them too), and a text whose two best labels are
nearly tied may flip. utils.corpus_models labels those near-ties again in fp32;
benchmarks/label_corpus_speed.py measures how many labels stay the same.

The model is exported once with torch.onnx.export (the torch.export-based exporter; optimum-onnx
0.1.0 would need transformers < 4.58), checked against torch on batches of other shapes than the
export's example, quantised with onnxruntime.quantization.quantize_dynamic, and cached under
utils.modes.cache_dir() by model id, revision (a hub commit, or a folder's file sizes and times) and
the options below. An export that fails is cached as a reason, so `--backend auto` falls back to
torch at once the next time.

ONNX Runtime was measured against torch's own int8 path (torch.ao dynamic quantisation) on this
course's encoder stand-in; the comparison is in benchmarks/label_corpus_speed.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import pathlib
import re
import shutil
import time
import warnings

import numpy as np

# Everything that changes the exported model goes into its cache key.
# MatMul only: the encoder's linear layers (nearly all the arithmetic); the pooler and classification
# head (Gemm, run once per text) stay fp32, as does the attention's activation-by-activation product.
OPTIONS = {"exporter": "torch.onnx.export(dynamo=True)", "weight_type": "QInt8", "per_channel": True,
           "reduce_range": False, "op_types": ["MatMul"], "matmul_const_b_only": True, "format": 1}
_VERSIONED = ("torch", "transformers", "onnx", "onnxscript", "onnxruntime")
MODEL_FILE, INFO_FILE, FAILED_FILE = "model.int8.onnx", "export.json", "failed.txt"
EXPORT_LOCK_TIMEOUT = 3600  # another process exporting a large model: wait for it, not for ever
TOLERANCE = 1e-3  # fp32 ONNX against torch, in logits: what rounding leaves, far below a wrong graph


class Int8Unavailable(RuntimeError):
    """The int8 backend cannot run this model here; the message is the one-line reason."""


def missing_runtime() -> str | None:
    """Why the int8 backend cannot be used in this environment (a missing package), or None."""
    import importlib.util

    missing = [name for name in ("onnxruntime", "onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed (pip install -r requirements.txt)"
    return None


def model_revision(model: str) -> dict:
    """What identifies the exact weights of `model`: a hub id's commit, or a folder's files (sizes, times)."""
    folder = pathlib.Path(model)
    if folder.is_dir():
        files = {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(folder.iterdir())
                 if p.is_file() and p.suffix in {".json", ".safetensors", ".bin", ".model", ".txt"}}
        return {"model": str(folder.resolve()), "files": files}
    from transformers.utils import cached_file

    config = pathlib.Path(cached_file(model, "config.json"))
    # The hub cache keeps each commit in snapshots/<commit>/.
    commit = config.parent.name if config.parent.parent.name == "snapshots" else None
    return {"model": model, "commit": commit}


def cache_folder(model: str) -> pathlib.Path:
    """The cache folder of `model`'s int8 export with today's options and library versions."""
    from .modes import cache_dir

    key = {"revision": model_revision(model), "options": OPTIONS,
           "versions": {name: importlib.metadata.version(name) for name in _VERSIONED}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", pathlib.Path(model).name or model)[:60]
    return cache_dir() / "onnx-int8" / f"{name}-{digest}"


class Int8Classifier:
    """An exported, int8-quantised sequence classifier in an ONNX Runtime session.

    `logits(inputs)` takes the tokenizer's output (PyTorch or NumPy tensors) and returns the logits
    as a NumPy array, like `model(**inputs).logits` of the torch model it came from.
    """

    def __init__(self, path: pathlib.Path, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # as torch's threads: the cores shared out between processes
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: the graph's unused-initializer notes are not the user's
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def logits(self, inputs) -> np.ndarray:
        """Logits for one tokenised batch."""
        feed = {name: np.asarray(inputs[name], dtype=np.int64) for name in self.input_names}
        return self.session.run(["logits"], feed)[0]


def _probe(tokenizer) -> list[dict]:
    """Tokenised batches of other sizes and lengths than the export's example: a graph that kept the
    example's shape, or a branch that torch.export fixed, gives other logits than torch on them."""
    texts = ["Defence spending will rise.", "We will cut the defence budget and close two of the bases in the north "
             "of the country.", "Schools need more teachers."]
    hypotheses = ["The quote is about the military."] * 3
    return [dict(tokenizer(texts, padding=True, return_tensors="pt")),
            dict(tokenizer(texts[:1], hypotheses[:1], padding=True, return_tensors="pt")),
            dict(tokenizer(texts, hypotheses, padding=True, return_tensors="pt"))]


def _export(network, tokenizer, folder: pathlib.Path) -> float:
    """Export `network` to ONNX in `folder`, check it against torch, quantise it; return the seconds taken."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    network = network.float().cpu().eval()
    example = dict(tokenizer(["A short text.", "A longer text, to pad the first one."], ["A hypothesis."] * 2,
                             padding=True, return_tensors="pt"))
    names = list(example)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    fp32 = folder / "model.fp32.onnx"
    # The exporter prints its steps and warns about its own internals: the command's lines stay readable.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (), str(fp32), kwargs=example, input_names=names, output_names=["logits"],
                          dynamic_shapes={name: {0: batch, 1: sequence} for name in names}, dynamo=True,
                          external_data=False)
    check = Int8Classifier(fp32, threads=1)
    with torch.inference_mode():
        for inputs in _probe(tokenizer):
            expected = network(**inputs).logits.numpy()
            difference = float(np.abs(check.logits(inputs) - expected).max())
            if difference > TOLERANCE:
                raise Int8Unavailable(f"the ONNX export gives other logits than torch (by {difference:.2g} on a "
                                      f"batch of shape {tuple(inputs['input_ids'].shape)})")
    del check
    # The exporter's recorded intermediate shapes trip the quantiser's shape inference
    # ("Inferred shape and existing shape differ"); without them it infers them afresh.
    graph = onnx.load(str(fp32))
    del graph.graph.value_info[:]
    onnx.save(graph, str(fp32))
    quantize_dynamic(str(fp32), str(folder / MODEL_FILE), weight_type=QuantType.QInt8,
                     per_channel=OPTIONS["per_channel"], reduce_range=OPTIONS["reduce_range"],
                     op_types_to_quantize=OPTIONS["op_types"],
                     extra_options={"MatMulConstBOnly": OPTIONS["matmul_const_b_only"]})
    fp32.unlink()  # only the int8 model is used; the fp32 one is 4 times its size
    return time.perf_counter() - started


def load_int8_classifier(model: str, load_network, tokenizer, threads: int,
                         report=print) -> Int8Classifier:
    """The int8 ONNX Runtime classifier of `model`, exported and quantised on first use, then cached.

    `load_network()` returns the torch model; it is called only when there is no cached export.
    `report(line)` tells the user about a first export (it takes a while). Raises Int8Unavailable
    with a one-line reason when the runtime is missing or the model does not export.
    """
    import filelock

    reason = missing_runtime()
    if reason:
        raise Int8Unavailable(reason)
    folder = cache_folder(model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One process exports; the others (torchrun's, or a second command) wait for it and load the result.
    with filelock.FileLock(str(folder.with_name(folder.name + ".lock")), timeout=EXPORT_LOCK_TIMEOUT):
        if (folder / FAILED_FILE).exists():
            raise Int8Unavailable((folder / FAILED_FILE).read_text(encoding="utf-8").strip()
                                  + f" (cached: delete {folder} to try again)")
        if not (folder / MODEL_FILE).exists():
            report(f"Exporting {model} to int8 ONNX once (cached in {folder}) ...")
            tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            # The exporter logs what it skips (torchvision's operators) and the quantiser advises pre-processing,
            # which is for static, calibrated quantisation: neither is news to the user.
            logging.disable(logging.WARNING)
            try:
                seconds = _export(load_network(), tokenizer, tmp)
                (tmp / INFO_FILE).write_text(json.dumps({"model": model, "revision": model_revision(model),
                                                         "options": OPTIONS, "seconds": round(seconds, 1)}, indent=2),
                                             encoding="utf-8")
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)  # a reader sees a complete export or none
            except Exception as error:  # any exporter failure means "not this model": record why, fall back
                message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
                reason = message if isinstance(error, Int8Unavailable) else \
                    f"{model} does not export to ONNX ({type(error).__name__}: {message})"
                if not isinstance(error, (OSError, MemoryError)):  # a full disk may pass; a model's graph won't
                    folder.mkdir(exist_ok=True)
                    (folder / FAILED_FILE).write_text(reason + "\n", encoding="utf-8")
                raise Int8Unavailable(reason) from None
            finally:  # also after Ctrl-C: no half export is left in the cache
                logging.disable(logging.NOTSET)
                shutil.rmtree(tmp, ignore_errors=True)
    try:
        return Int8Classifier(folder / MODEL_FILE, threads)
    except Exception as error:  # e.g. a cache file cut short by a full disk
        raise Int8Unavailable(f"the cached int8 model in {folder} does not load ({type(error).__name__}); delete "
                              "that folder to export it again") from None
