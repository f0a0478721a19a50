"""A throw-away, offline Hugging Face cache in which every hub id the course names is a tiny random model.

`build(root)` writes `<root>/hf_home/hub/models--{org}--{name}/{refs/main, snapshots/<commit>/...}` (the real
huggingface_hub cache layout) and `<root>/data/` (the course's two CSV files), in seconds and without network.
With the returned environment (HF_HOME, HF_HUB_OFFLINE=1, COURSE_DATA_URL, ...) the notebooks run in their real
"gpu" and "cpu" settings against these fixtures, so defects that the ci stand-ins hide show up.

What is copied from each real Hub repo (see FIXTURE_MODELS): the architecture class the checkpoint was saved
from (its head: masked-LM, sequence or token classification, bare encoder, causal LM), the label mapping, the
tokenizer file layout (e.g. microsoft/deberta-v3-* ship only `spm.model` + a two-key tokenizer_config.json, so
transformers must convert the sentencepiece model itself, which needs protobuf), the special-token ids and chat
templates, the checkpoint dtype on disk (DeBERTa-v3 float16, SmolLM2/Qwen bfloat16) and whether config.json
names a dtype at all, the unused pretraining heads of the DeBERTa-v3 checkpoints (`lm_predictions.*`,
`mask_predictions.*`), generation_config.json (Qwen samples by default), sentence-transformers module files, and
the legacy v4 config keys that change code paths (`pos_att_type: "p2c|c2p"`, `position_buckets`, ModernBERT's
`global_attn_every_n_layers`, `reference_compile`, Qwen's tied embeddings and a vocab larger than the
tokenizer).

What it cannot copy: the weights (they are random, seeded), so no quality and no meaningful metric; the real
vocabularies and their sizes (we train ~1000-entry tokenizers on our own text; SmolLM2 and Qwen share the
SmolLM2 stand-in's 49152-token tokenizer); model sizes, so neither speed nor memory; CUDA kernels; and mDeBERTa's
multilingual vocabulary (it shares the DeBERTa-v3 sentencepiece model).

The data in `<root>/data/` is synthetic, written by the course authors: it recombines the sentences of the
repo's slices in data/manifesto_military/ with openers and closers of ours (no Manifesto Project text), in the
real files' column format; train has the real file's 3970 rows and label counts, test 2400 rows, mostly "Other",
so that the notebooks' gpu settings (all 3970 train rows in notebook 5, N_TEST=2000) can draw their samples.

CLI: `python tests/hub_fixture.py OUT_DIR [--all-fp32]` builds (or reuses) and prints the environment.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import importlib.metadata
import importlib.util
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

import filelock  # a dependency of huggingface_hub, so always there

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
STAMP = "stamp.json"
_VERSIONED = ("torch", "transformers", "tokenizers", "sentencepiece", "safetensors", "huggingface_hub",
              "sentence-transformers")
HIDDEN, LLM_HIDDEN = 32, 64  # tiny, but several heads and max_position_embeddings >= 512 like the real ones


@dataclass(frozen=True)
class ModelSpec:
    """What a fixture copies from one real Hub repo."""

    architecture: str  # transformers class whose weights the real checkpoint holds (its head)
    model_type: str
    tokenizer: str  # tokenizer family: wordpiece-uncased | wordpiece-cased | spm | bpe | smollm2 | qwen
    tokenizer_files: tuple[str, ...]  # exactly the tokenizer files the real repo has
    disk_dtype: str = "float32"  # dtype of the tensors in model.safetensors
    config_dtype: str | None = None  # torch_dtype in the real config.json; None: the key is absent
    id2label: dict[int, str] | None = None
    pooling: str | None = None  # "mean" | "cls": a sentence-transformers repo
    max_seq_length: int | None = None
    version: str = "4.40.0"  # transformers_version of the real config.json
    extra: dict = field(default_factory=dict)  # further real config keys


_NLI2 = {0: "entailment", 1: "not_entailment"}
_WP = ("vocab.txt", "tokenizer_config.json")
_WP_FULL = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_SPM_ONLY = ("spm.model", "tokenizer_config.json")
_SPM_FULL = ("spm.model", "tokenizer.json", "tokenizer_config.json", "added_tokens.json", "special_tokens_map.json")
_BPE = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_GPT2 = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")
_QWEN = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")
_DEBERTA_V3 = ModelSpec("DebertaV2Model", "deberta-v2", "spm", _SPM_ONLY, "float16", version="")
_ZS_DEBERTA = ModelSpec("DebertaV2ForSequenceClassification", "deberta-v2", "spm", _SPM_FULL, "float16", "float16",
                        _NLI2, version="4.37.2")
_SMOLLM2 = ModelSpec("LlamaForCausalLM", "llama", "smollm2", _GPT2, "bfloat16", "bfloat16", version="4.42.3")
_QWEN25 = ModelSpec("Qwen2ForCausalLM", "qwen2", "qwen", _QWEN, "bfloat16", "bfloat16", version="4.43.1")

FIXTURE_MODELS: dict[str, ModelSpec] = {
    "distilbert/distilbert-base-uncased-finetuned-sst-2-english": ModelSpec(
        "DistilBertForSequenceClassification", "distilbert", "wordpiece-uncased", _WP,
        id2label={0: "NEGATIVE", 1: "POSITIVE"}, version="4.6.0.dev0", extra={"finetuning_task": "sst-2"}),
    "dslim/bert-base-NER": ModelSpec(
        "BertForTokenClassification", "bert", "wordpiece-cased", (*_WP, "special_tokens_map.json"),
        id2label=dict(enumerate(["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"])),
        version="4.11.0.dev0"),
    "microsoft/deberta-v3-base": _DEBERTA_V3,
    "microsoft/deberta-v3-small": _DEBERTA_V3,
    "microsoft/deberta-v3-xsmall": _DEBERTA_V3,
    "answerdotai/ModernBERT-base": ModelSpec("ModernBertForMaskedLM", "modernbert", "bpe", _BPE,
                                             config_dtype="float32", version="4.47.0.dev0"),
    "google-bert/bert-base-uncased": ModelSpec("BertForMaskedLM", "bert", "wordpiece-uncased",
                                               ("vocab.txt", "tokenizer.json", "tokenizer_config.json"),
                                               version="4.6.0.dev0"),
    "distilbert/distilbert-base-uncased": ModelSpec("DistilBertForMaskedLM", "distilbert", "wordpiece-uncased",
                                                    ("vocab.txt", "tokenizer.json", "tokenizer_config.json"),
                                                    version="4.10.0.dev0"),
    "MoritzLaurer/deberta-v3-base-zeroshot-v2.0": _ZS_DEBERTA,
    "MoritzLaurer/deberta-v3-large-zeroshot-v2.0": _ZS_DEBERTA,
    "MoritzLaurer/ModernBERT-base-zeroshot-v2.0": ModelSpec(
        "ModernBertForSequenceClassification", "modernbert", "bpe", _BPE, config_dtype="float32", id2label=_NLI2,
        version="4.48.0.dev0"),
    "MoritzLaurer/xtremedistil-l6-h256-zeroshot-v1.1-all-33": ModelSpec(
        "BertForSequenceClassification", "bert", "wordpiece-uncased", _WP_FULL, config_dtype="float32",
        id2label=_NLI2, version="4.37.2"),
    "MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7": ModelSpec(
        "DebertaV2ForSequenceClassification", "deberta-v2", "spm", _SPM_ONLY, "float16",
        id2label={0: "entailment", 1: "neutral", 2: "contradiction"}, version="4.13.0"),
    "sentence-transformers/all-MiniLM-L6-v2": ModelSpec("BertModel", "bert", "wordpiece-uncased", _WP_FULL,
                                                         pooling="mean", max_seq_length=256, version="4.8.2"),
    "BAAI/bge-small-en-v1.5": ModelSpec("BertModel", "bert", "wordpiece-uncased", _WP_FULL, config_dtype="float32",
                                        pooling="cls", max_seq_length=512, version="4.30.0"),
    "HuggingFaceTB/SmolLM2-135M-Instruct": _SMOLLM2,
    "HuggingFaceTB/SmolLM2-360M-Instruct": _SMOLLM2,
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": _SMOLLM2,
    "Qwen/Qwen2.5-0.5B-Instruct": _QWEN25,
    "Qwen/Qwen2.5-1.5B-Instruct": _QWEN25,
}

# Our own ChatML template in the style of Qwen2.5's (default system message, add_generation_prompt; no tools).
QWEN_CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- set rest = messages[1:] %}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}{%- set rest = messages %}{%- endif %}"
    "{%- for m in rest %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")

# Generic sentences (ours) so the tokenizers also know everyday words, and a few non-English ones for mDeBERTa.
_GENERIC = """I love this movie, it was wonderful.|This film was a boring waste of time.|The food was great but the
service was slow.|My name is Sarah and I live in London.|Angela Merkel met Emmanuel Macron in Paris on Monday.|Apple
and Microsoft opened new offices in Berlin.|The capital of France is Paris.|Is this text about sport, politics or
the economy?|Answer with one word only.|Classify the following sentence.|The weather is lovely today.|Hugging Face
hosts thousands of models.|Transformers turn text into numbers called tokens.|Der Staat muss die Bundeswehr besser
ausstatten.|Nous voulons plus d'argent pour les écoles.|El gobierno reducirá el gasto militar.|This text is about
the military.|This example is about something else.|It was the best of times, it was the worst of times.""".replace(
    "\n", " ").split("|")


def _sha(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _modes():
    """utils/modes.py, loaded by path: `import utils` would import pandas, sklearn and argilla (seconds)."""
    if "utils.modes" in sys.modules:
        return sys.modules["utils.modes"]
    spec = importlib.util.spec_from_file_location("_hub_fixture_modes", REPO_ROOT / "utils" / "modes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up in sys.modules
    try:
        spec.loader.exec_module(module)
        return module
    except ImportError:  # modes.py has grown a relative import: take the slow, sure way
        del sys.modules[spec.name]
        sys.path.insert(0, str(REPO_ROOT))
        return importlib.import_module("utils.modes")


def _stamp(all_fp32: bool) -> dict:
    """What a build depends on; a fixture whose stamp differs is rebuilt."""
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    inputs = [pathlib.Path(__file__), REPO_ROOT / "utils" / "modes.py",
              *sorted((REPO_ROOT / "data" / "manifesto_military").glob("*.csv"))]
    return {"builder": _sha(*(p.read_bytes() for p in inputs)), "all_fp32": all_fp32, "versions": versions}


def environment(root: pathlib.Path) -> dict[str, str]:
    """The environment variables a process needs to use the fixture under `root`."""
    root = pathlib.Path(root).resolve()
    # HF_HUB_CACHE too: a value inherited from the caller's environment would override HF_HOME.
    return {"HF_HOME": str(root / "hf_home"), "HF_HUB_CACHE": str(root / "hf_home" / "hub"), "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
            "COURSE_DATA_URL": f"file://{root}/data/"}


def build(root: pathlib.Path, all_fp32: bool = False) -> dict[str, str]:
    """Build the fixture under `root` (or reuse it if its stamp matches) and return its environment.

    The tree is built in a temporary sibling folder and renamed into place, so a reader never sees half a
    fixture; with all_fp32 every checkpoint is float32 (shows that nothing depends on the dtype by accident).
    """
    root = pathlib.Path(root).resolve()
    stamp = _stamp(all_fp32)
    if _stamp_matches(root, stamp):
        return environment(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    # Parallel test workers ask for the same fixture at once: one builds, the others wait and reuse it
    # (without the lock, a second builder would move the first one's fixture aside under running kernels).
    with filelock.FileLock(root.parent / f".{root.name}.lock"):
        if _stamp_matches(root, stamp):
            return environment(root)
        _build_in_place(root, stamp, all_fp32)
    return environment(root)


def _build_in_place(root: pathlib.Path, stamp: dict, all_fp32: bool) -> None:
    """Build the tree in a temporary sibling folder, then rename it to `root` (the caller holds the lock)."""
    started = time.perf_counter()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        build_tree(tmp, all_fp32)
        (tmp / STAMP).write_text(json.dumps(stamp, indent=1), encoding="utf-8")
        if root.exists():  # a stale fixture: move it aside, because rename cannot replace a non-empty folder
            old = root.with_name(f".{root.name}.old.{os.getpid()}")
            os.rename(root, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, root)
    except OSError:
        if not _stamp_matches(root, stamp):  # else another process built the same fixture first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"hub fixture built in {time.perf_counter() - started:.1f} s: {root}", file=sys.stderr)


def _stamp_matches(root: pathlib.Path, stamp: dict) -> bool:
    try:
        return json.loads((root / STAMP).read_text(encoding="utf-8")) == stamp
    except (OSError, ValueError):
        return False


def build_tree(out: pathlib.Path, all_fp32: bool = False, ids: list[str] | None = None) -> None:
    """Write hf_home/ and data/ into `out`; `ids` (default: every id in utils.modes.MODEL_KINDS) limits the models."""
    out = pathlib.Path(out)
    if ids is None:
        ids = list(_modes().MODEL_KINDS)
        missing = [i for i in ids if i not in FIXTURE_MODELS]
        if missing:
            raise KeyError(f"utils.modes.MODEL_KINDS names {missing} but tests/hub_fixture.py has no spec for "
                           "them: add each to FIXTURE_MODELS with the real repo's architecture, head and files.")
    from transformers.utils import logging

    texts = _corpus()
    kits: dict[str, dict] = {}
    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # one "Writing model shards" bar per model is noise
    try:
        for repo_id in ids:
            spec = FIXTURE_MODELS[repo_id]
            if spec.tokenizer not in kits:
                kits[spec.tokenizer] = _TOKENIZER_KITS[spec.tokenizer](texts)
            _write_repo(out / "hf_home" / "hub", repo_id, spec, kits[spec.tokenizer], all_fp32)
    finally:
        if bars:
            logging.enable_progress_bar()
    _write_data(out / "data")


def _corpus() -> list[str]:
    texts = list(_GENERIC)
    for path in sorted((REPO_ROOT / "data" / "manifesto_military").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                texts += [row[c] for c in ("text_original", "text_preceding", "text_following") if row[c]]
    return texts


# ---------------------------------------------------------------- tokenizers (one kit per family)

def _wordpiece_kit(texts: list[str], lower: bool) -> dict:
    import transformers
    from tokenizers import normalizers, pre_tokenizers

    # The real BERT layout: [PAD]=0, [unused0..98], [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103. Then every
    # character alone and as a continuation (so any word can be spelled), then whole words by frequency.
    # Built by hand: the tokenizers WordPiece trainer orders ties differently from run to run.
    specials = ["[PAD]", *(f"[unused{i}]" for i in range(99)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer, splitter = normalizers.BertNormalizer(lowercase=lower), pre_tokenizers.BertPreTokenizer()
    counts: dict[str, int] = {}
    for text in texts:
        for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] = counts.get(word, 0) + 1
    chars = sorted({c for word in counts for c in word})
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))
    tokens = [*specials, *chars, *(f"##{c}" for c in chars)]
    tokens += words[: 1000 - len(tokens)]
    # tokenizer.json as transformers converts vocab.txt, for the repos that ship one.
    vocab = {token: i for i, token in enumerate(tokens)}
    fast = transformers.BertTokenizer(vocab=vocab, do_lower_case=lower).backend_tokenizer.to_str()
    special_map = {f"{k}_token": f"[{k.upper()}]" for k in ("unk", "sep", "pad", "cls", "mask")}
    full_config = {"do_lower_case": lower, **special_map, "tokenize_chinese_chars": True, "strip_accents": None,
                   "do_basic_tokenize": True, "never_split": None, "tokenizer_class": "BertTokenizer",
                   "model_max_length": 512}
    return {"vocab.txt": "".join(f"{t}\n" for t in tokens), "tokenizer.json": fast,
            "special_tokens_map.json": special_map, "full:tokenizer_config.json": full_config,
            "tokenizer_config.json": {"do_lower_case": lower, "model_max_length": 512}, "vocab_size": len(vocab),
            "ids": {}}


def _spm_kit(texts: list[str]) -> dict:
    import sentencepiece as spm
    import transformers

    buffer = io.BytesIO()
    # DeBERTa-v3's piece layout: [PAD]=0, [CLS]=1, [SEP]=2, [UNK]=3; [MASK] is added after the last piece.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=buffer, vocab_size=1000, hard_vocab_limit=False,
        character_coverage=1.0, num_threads=1, minloglevel=2, pad_id=0, pad_piece="[PAD]", bos_id=1,
        bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]", unk_id=3, unk_piece="[UNK]")
    sp = spm.SentencePieceProcessor(model_proto=buffer.getvalue())
    size = sp.get_piece_size()
    # tokenizer.json as transformers converts spm.model (the same bytes), built from the pieces so the build
    # itself needs no protobuf.
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(size)]
    fast = transformers.DebertaV2Tokenizer(vocab=pieces, do_lower_case=False, unk_id=3).backend_tokenizer.to_str()
    names = {0: "[PAD]", 1: "[CLS]", 2: "[SEP]", 3: "[UNK]", size: "[MASK]"}
    special_map = {"bos_token": "[CLS]", "cls_token": "[CLS]", "eos_token": "[SEP]", "mask_token": "[MASK]",
                   "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"}
    full_config = {"added_tokens_decoder": {str(i): _added(n) for i, n in names.items()}, **special_map,
                   "clean_up_tokenization_spaces": True, "do_lower_case": False, "model_max_length": 512,
                   "sp_model_kwargs": {}, "split_by_punct": False, "tokenizer_class": "DebertaV2Tokenizer",
                   "vocab_type": "spm"}
    # The real DeBERTa-v3 vocab_size (128100) leaves 100 unused rows after the 128000 pieces + [MASK].
    return {"spm.model": buffer.getvalue(), "tokenizer.json": fast,
            "tokenizer_config.json": {"do_lower_case": False, "vocab_type": "spm"},
            "full:tokenizer_config.json": full_config, "added_tokens.json": {"[MASK]": size},
            "special_tokens_map.json": special_map, "vocab_size": size + 100, "ids": {}}


def _bpe_kit(texts: list[str]) -> dict:
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=1000, special_tokens=["<|padding|>", "<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # As in ModernBERT, the BERT-style specials come after the BPE vocab; [MASK] swallows the space before it.
    tok.add_special_tokens([AddedToken(t, normalized=False) for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]")]
                           + [AddedToken("[MASK]", lstrip=True, normalized=False)])
    ids = {t: tok.token_to_id(f"[{t.upper()}]") for t in ("unk", "cls", "sep", "pad", "mask")}
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["cls"]), ("[SEP]", ids["sep"])])
    special_map = {f"{k}_token": f"[{k.upper()}]" for k in ids}
    config = {"added_tokens_decoder": {str(i): _added(f"[{k.upper()}]", lstrip=k == "mask") for k, i in ids.items()},
              "clean_up_tokenization_spaces": True, **special_map,
              "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 8192,
              "tokenizer_class": "PreTrainedTokenizerFast"}
    vocab_size = -(-tok.get_vocab_size() // 64) * 64  # padded to a multiple of 64 like ModernBERT's 50368
    return {"tokenizer.json": tok.to_str(), "tokenizer_config.json": config, "special_tokens_map.json": special_map,
            "vocab_size": vocab_size, "ids": ids}


def _llm_kit(texts: list[str], qwen: bool) -> dict:
    folder = _modes().llm_stand_in()  # SmolLM2-135M-Instruct converted once by `make setup`
    tokenizer_json = (folder / "tokenizer.json").read_text(encoding="utf-8")
    data = json.loads(tokenizer_json)
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    added = {str(t["id"]): _added(t["content"]) for t in data["added_tokens"]}
    # transformers 5 saves the chat template next to tokenizer_config.json; older versions inside it.
    template_file = folder / "chat_template.jinja"
    template = (template_file.read_text(encoding="utf-8") if template_file.exists() else
                json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))["chat_template"])
    common = {"added_tokens_decoder": added, "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
              "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>"}
    if qwen:
        config = {"add_bos_token": False, "add_prefix_space": False, **common, "bos_token": None,
                  "chat_template": QWEN_CHAT_TEMPLATE, "errors": "replace", "model_max_length": 131072,
                  "pad_token": "<|endoftext|>", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer",
                  "unk_token": None}
    else:
        config = {**common, "bos_token": "<|im_start|>", "chat_template": template, "model_max_length": 8192,
                  "pad_token": "<|im_end|>", "tokenizer_class": "GPT2Tokenizer", "unk_token": "<|endoftext|>",
                  "vocab_size": 49152}
    special_map = {k: config[k] for k in ("additional_special_tokens", "bos_token", "eos_token", "pad_token",
                                          "unk_token")}
    vocab = dict(sorted(data["model"]["vocab"].items(), key=lambda item: item[1]))
    size = len(vocab)
    return {"tokenizer.json": tokenizer_json, "tokenizer_config.json": config, "special_tokens_map.json": special_map,
            "vocab.json": json.dumps(vocab, ensure_ascii=False), "merges.txt": "#version: 0.2\n" + "\n".join(merges),
            # Qwen's embedding matrix is larger than its tokenizer (151936 rows for 151665 tokens): copy that.
            "vocab_size": -(-(size + 1) // 128) * 128 if qwen else size,
            "ids": {"bos": 0 if qwen else 1, "eos": 2, "pad": 0 if qwen else 2}}


def _added(content: str, lstrip: bool = False) -> dict:
    return {"content": content, "lstrip": lstrip, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}


_TOKENIZER_KITS = {"wordpiece-uncased": lambda t: _wordpiece_kit(t, True),
                   "wordpiece-cased": lambda t: _wordpiece_kit(t, False), "spm": _spm_kit, "bpe": _bpe_kit,
                   "smollm2": lambda t: _llm_kit(t, False), "qwen": lambda t: _llm_kit(t, True)}


# ---------------------------------------------------------------- one repo

def _config(spec: ModelSpec, kit: dict) -> dict:
    """config.json with the real repo's keys (transformers 4 names), tiny sizes."""
    vocab, ids = kit["vocab_size"], kit["ids"]
    small = {"hidden_size": HIDDEN, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 512, "vocab_size": vocab, "hidden_dropout_prob": 0.1,
             "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, "hidden_act": "gelu"}
    if spec.model_type == "bert":
        config = {**small, "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute",
                  "type_vocab_size": 2, "use_cache": True}
    elif spec.model_type == "distilbert":
        config = {"activation": "gelu", "attention_dropout": 0.1, "dim": HIDDEN, "dropout": 0.1, "hidden_dim": 64,
                  "initializer_range": 0.02, "max_position_embeddings": 512, "n_heads": 2, "n_layers": 2,
                  "pad_token_id": 0, "qa_dropout": 0.1, "seq_classif_dropout": 0.2, "sinusoidal_pos_embds": False,
                  "tie_weights_": True, "vocab_size": vocab}
    elif spec.model_type == "deberta-v2":
        config = {**small, "relative_attention": True, "position_buckets": 256, "norm_rel_ebd": "layer_norm",
                  "share_att_key": True, "pos_att_type": "p2c|c2p", "layer_norm_eps": 1e-7,
                  "max_relative_positions": -1, "position_biased_input": False, "type_vocab_size": 0}
    elif spec.model_type == "modernbert":
        config = {"attention_bias": False, "attention_dropout": 0.0, "bos_token_id": ids["cls"],
                  "classifier_activation": "gelu", "classifier_bias": False, "classifier_dropout": 0.0,
                  "classifier_pooling": "mean", "cls_token_id": ids["cls"], "decoder_bias": True,
                  "deterministic_flash_attn": False, "embedding_dropout": 0.0, "eos_token_id": ids["sep"],
                  "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0, "gradient_checkpointing": False,
                  "hidden_activation": "gelu", "hidden_size": HIDDEN, "initializer_cutoff_factor": 2.0,
                  "initializer_range": 0.02, "intermediate_size": 48, "layer_norm_eps": 1e-05,
                  "local_attention": 128, "local_rope_theta": 10000.0, "max_position_embeddings": 8192,
                  "mlp_bias": False, "mlp_dropout": 0.0, "norm_bias": False, "norm_eps": 1e-05,
                  "num_attention_heads": 2, "num_hidden_layers": 2, "pad_token_id": ids["pad"],
                  "position_embedding_type": "absolute", "reference_compile": True, "sep_token_id": ids["sep"],
                  "sparse_pred_ignore_index": -100, "sparse_prediction": False, "vocab_size": vocab}
    elif spec.model_type == "llama":
        config = {"attention_bias": False, "attention_dropout": 0.0, "bos_token_id": ids["bos"],
                  "eos_token_id": ids["eos"], "head_dim": 16, "hidden_act": "silu", "hidden_size": LLM_HIDDEN,
                  "initializer_range": 0.041666666666666664, "intermediate_size": 128, "is_llama_config": True,
                  "max_position_embeddings": 8192, "mlp_bias": False, "num_attention_heads": 4,
                  "num_hidden_layers": 2, "num_key_value_heads": 2, "pad_token_id": ids["pad"], "pretraining_tp": 1,
                  "rms_norm_eps": 1e-05, "rope_interleaved": False, "rope_scaling": None, "rope_theta": 100000,
                  "tie_word_embeddings": True, "use_cache": True, "vocab_size": vocab}
    else:  # qwen2
        config = {"attention_dropout": 0.0, "bos_token_id": ids["bos"], "eos_token_id": ids["eos"],
                  "hidden_act": "silu", "hidden_size": LLM_HIDDEN, "initializer_range": 0.02,
                  "intermediate_size": 128, "max_position_embeddings": 32768, "max_window_layers": 21,
                  "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
                  "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True, "use_cache": True,
                  "use_sliding_window": False, "vocab_size": vocab}
    if spec.architecture != "DebertaV2Model":  # the microsoft DeBERTa-v3 configs name no architecture
        config["architectures"] = [spec.architecture]
    config["model_type"] = spec.model_type
    if spec.id2label:
        config["id2label"] = {str(i): label for i, label in spec.id2label.items()}
        config["label2id"] = {label: i for i, label in spec.id2label.items()}
    if spec.version:
        config["transformers_version"] = spec.version
    return {**config, **spec.extra}


def _write_repo(hub: pathlib.Path, repo_id: str, spec: ModelSpec, kit: dict, all_fp32: bool) -> None:
    import torch
    import transformers
    from safetensors.torch import load_file, save_file

    commit = hashlib.sha1(f"hub-fixture:{repo_id}:{all_fp32}".encode()).hexdigest()
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")  # no newline, as huggingface_hub writes it

    config = _config(spec, kit)
    disk_dtype = "float32" if all_fp32 else spec.disk_dtype
    if spec.config_dtype:
        config["torch_dtype"] = "float32" if all_fp32 else spec.config_dtype
    _write_json(snapshot / "config.json", config)
    torch.manual_seed(int(commit[:8], 16))  # per repo, so a subset builds the same bytes as the whole
    model = getattr(transformers, spec.architecture)(transformers.AutoConfig.from_pretrained(snapshot))
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)  # safetensors (transformers 5 writes nothing else), tied copies dropped
        tensors = load_file(pathlib.Path(tmp) / "model.safetensors")
    if spec.architecture == "DebertaV2Model":
        tensors = {f"deberta.{k}": v for k, v in tensors.items()} | _electra_heads(kit["vocab_size"])
    dtype = getattr(torch, disk_dtype)
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in sorted(tensors.items())}
    save_file(tensors, str(snapshot / "model.safetensors"), metadata={"format": "pt"})

    for name in spec.tokenizer_files:
        # Repos with a special_tokens_map.json were saved by a newer transformers: their config lists everything.
        full = "full:" + name
        content = kit[full] if full in kit and "special_tokens_map.json" in spec.tokenizer_files else kit[name]
        if isinstance(content, bytes):
            (snapshot / name).write_bytes(content)
        elif isinstance(content, str):
            (snapshot / name).write_text(content, encoding="utf-8")
        else:
            _write_json(snapshot / name, content)
    if spec.model_type in ("llama", "qwen2"):
        ids = kit["ids"]
        generation = {"bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"]}
        if spec.model_type == "qwen2":  # Qwen2.5-Instruct samples by default; it stops at <|im_end|> or <|endoftext|>
            generation |= {"do_sample": True, "eos_token_id": [ids["eos"], ids["bos"]], "repetition_penalty": 1.1,
                           "temperature": 0.7, "top_k": 20, "top_p": 0.8}
        _write_json(snapshot / "generation_config.json", {**generation, "transformers_version": spec.version})
    if spec.pooling:
        _write_sentence_transformers(snapshot, spec)


def _electra_heads(vocab_size: int) -> dict:
    """The pretraining heads stored next to `deberta.*` in the real DeBERTa-v3 checkpoints (unused on load)."""
    import torch

    h = HIDDEN
    shapes = {"lm_predictions.lm_head.dense.weight": (h, h), "lm_predictions.lm_head.dense.bias": (h,),
              "lm_predictions.lm_head.LayerNorm.weight": (h,), "lm_predictions.lm_head.LayerNorm.bias": (h,),
              "lm_predictions.lm_head.bias": (vocab_size,), "mask_predictions.dense.weight": (h, h),
              "mask_predictions.dense.bias": (h,), "mask_predictions.LayerNorm.weight": (h,),
              "mask_predictions.LayerNorm.bias": (h,), "mask_predictions.classifier.weight": (1, h),
              "mask_predictions.classifier.bias": (1,)}
    return {k: torch.randn(shape) * 0.02 for k, shape in shapes.items()}


def _write_sentence_transformers(snapshot: pathlib.Path, spec: ModelSpec) -> None:
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    _write_json(snapshot / "modules.json", modules)
    _write_json(snapshot / "sentence_bert_config.json",
                {"max_seq_length": spec.max_seq_length, "do_lower_case": spec.pooling == "cls"})
    _write_json(snapshot / "config_sentence_transformers.json",
                {"__version__": {"sentence_transformers": "2.2.2", "transformers": spec.version, "pytorch": "1.13.0"}})
    (snapshot / "1_Pooling").mkdir()
    _write_json(snapshot / "1_Pooling" / "config.json",
                {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": spec.pooling == "cls",
                 "pooling_mode_mean_tokens": spec.pooling == "mean", "pooling_mode_max_tokens": False,
                 "pooling_mode_mean_sqrt_len_tokens": False})


def _write_json(path: pathlib.Path, content: object) -> None:
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- data

DATA_COLUMNS = ["idx", "label", "label_text", "text_original", "label_domain_text", "label_subcat_text",
                "text_preceding", "text_following", "manifesto_id", "doc_id", "country_name", "date", "party",
                "cmp_code_hb4", "cmp_code", "label_subcat_text_simple"]
# Openers and closers that turn one synthetic sentence into many distinct ones (ours, like all the data here).
_OPENERS = ["", "Furthermore, ", "In the next term, ", "Above all, ", "At the same time, ", "For this reason, ",
            "As a party, ", "In government, ", "Without delay, ", "Step by step, ", "Together with our partners, ",
            "Within our first year, ", "As promised, ", "In short, ", "Once again, ", "In every region, ",
            "With your support, ", "By the end of the decade, "]
_CLOSERS = ["", " This is our promise.", " We will report on progress every year.",
            " Parliament will review this after two years.", " The costs are set out in our budget plan.",
            " Work on this will start next year.", " We have costed this carefully.",
            " Our members voted for this at our congress.", " We will publish the details in spring."]
_OTHER_CODES = [("504", "Welfare and Quality of Life", "Welfare State Expansion"),
                ("501", "Welfare and Quality of Life", "Environmental Protection"),
                ("605", "Fabric of Society", "Law and Order: Positive"),
                ("411", "Economy", "Technology and Infrastructure: Positive")]
# Rows per label. Train: the real file's 3970 rows and label counts (notebook 5 samples all of them in gpu
# mode). Test: 2400 rows, mostly "Other" like the real file, enough for the notebooks' N_TEST=2000.
ROWS = {"train": {"Military: Positive": 1623, "Military: Negative": 362, "Other": 1985},
        "test": {"Military: Positive": 260, "Military: Negative": 100, "Other": 2040}}


def _write_data(folder: pathlib.Path) -> None:
    folder.mkdir(parents=True)
    parties = sorted({row["party"] for split in ("train", "test") for row in _slice(split)})
    for split in ("train", "test"):
        rows = []
        for label_text, n_rows in ROWS[split].items():
            bases = [row for row in _slice(split) if row["label_text"] == label_text]
            for j in range(n_rows):
                b, k = j % len(bases), j // len(bases)  # copy k of base sentence b
                base, opener, closer = bases[b], _OPENERS[k % len(_OPENERS)], _CLOSERS[k // len(_OPENERS)]
                text = base["text_original"]
                if opener and text.split()[0] in {"We", "Our", "The", "This", "All", "Every", "A", "No", "It"}:
                    text = text[0].lower() + text[1:]  # lower-case only words that are not names
                party = 41000 + 10 * parties.index(base["party"])
                if base["label"] == "2":
                    code, domain, subcat = _OTHER_CODES[b % len(_OTHER_CODES)]
                else:
                    code, domain, subcat = ("104" if base["label"] == "1" else "105"), "External Relations", label_text
                rows.append({"idx": len(rows), "label": base["label"], "label_text": label_text,
                             "text_original": opener + text + closer, "label_domain_text": domain,
                             "label_subcat_text": subcat,
                             # every fifth copy opens a section, so it has no preceding sentence
                             "text_preceding": "" if k % 5 == 4 else base["text_preceding"],
                             "text_following": base["text_following"], "manifesto_id": f"{party}_{base['date']}",
                             "doc_id": 1000 + parties.index(base["party"]), "country_name": base["country_name"],
                             "date": base["date"], "party": party, "cmp_code_hb4": code, "cmp_code": code,
                             "label_subcat_text_simple": subcat})
        # Grouped by manifesto and mixed within it (deterministically), not sorted by label.
        rows.sort(key=lambda row: (row["manifesto_id"], row["idx"] % 97, row["idx"]))
        for i, row in enumerate(rows):
            row["idx"] = i
        with (folder / f"df_manifesto_military_{split}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=DATA_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def _slice(split: str) -> list[dict]:
    with (REPO_ROOT / "data" / "manifesto_military" / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def main(argv: list[str] | None = None) -> None:
    """CLI: build (or reuse) the fixture in OUT_DIR and print its environment as KEY=value lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--all-fp32", action="store_true", help="store every checkpoint in float32")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    env = build(args.out_dir, all_fp32=args.all_fp32)
    print(f"ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    for key, value in env.items():
        print(f"{key}={value}")


if __name__ == "__main__":
    main()
