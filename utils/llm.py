"""Generative LLMs as classifiers: the prompt, answer-only training data, scoring and parsing.

A generative LLM answers in text, but the task needs one of its labels. This module turns a row
of the data set into chat messages (the prompt), turns a prompt plus its correct answer into
training data where only the answer counts for the loss, scores how likely each label's answer
is (so every prediction is a valid label), and parses free-text answers.

The words, the instruction and the system message come from the task (utils/task.py; the
notebooks pass `task=TASK`; without one, the default task's). The built-in tasks answer with
single words ("positive", "negative", "other"), one token each for the course models: reading
the probabilities then needs one forward pass per text, and no label is favoured for being
shorter. The options are also lettered in the prompt, because models sometimes answer with the
letter; parse_answer() accepts both.
"""

from __future__ import annotations

import copy
import inspect
import re
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .task import Task, default_task, load_task
from .task_defaults import answer_request

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy loss skips

# The default task's answer words, option letters, system message and instruction (task.json of
# data/manifesto_military/), for code written before tasks were data; notebooks use TASK.answers etc.
_DEFAULT = default_task()
ANSWERS = dict(_DEFAULT.answers)
LETTERS = _DEFAULT.letters
SYSTEM_PROMPT = _DEFAULT.system_prompt
INSTRUCTION = _DEFAULT.instruction
ANSWER_REQUEST = answer_request(_DEFAULT)


def _clean(value: object) -> str:
    return "" if value is None or pd.isna(value) else str(value).strip()


def text_block(row: pd.Series | dict, context: bool = True) -> str:
    """The quote, marked, between the sentence before and after it (empty context left out)."""
    lines = []
    if context and _clean(row["text_preceding"]):
        lines.append(f"Sentence before: {_clean(row['text_preceding'])}")
    lines.append(f'Quote: "{_clean(row["text_original"])}"')
    if context and _clean(row["text_following"]):
        lines.append(f"Sentence after: {_clean(row['text_following'])}")
    return "\n".join(lines)


def build_messages(row: pd.Series | dict, context: bool = True, instruction: str | None = None,
                   system: str | None = None, task: Task | str | None = None) -> list[dict[str, str]]:
    """The chat messages for one row: a system message, then the instruction, text and request.

    `row` needs text_original, and text_preceding / text_following when `context` is True.
    `instruction` and `system` default to the task's; `system=""` leaves the system message out.
    The request (which words to answer with) always comes from the task's answer words.
    """
    task = load_task(task)
    instruction = task.instruction if instruction is None else instruction
    system = task.system_prompt if system is None else system
    user = f"{instruction}\n\n{text_block(row, context)}\n\n{answer_request(task)}"
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": user}]


def messages_for(df: pd.DataFrame, context: bool = True, instruction: str | None = None,
                 task: Task | str | None = None) -> list[list[dict]]:
    """build_messages() for every row of `df`, in order (`instruction`: default the task's)."""
    task = load_task(task)
    return [build_messages(row, context, instruction, task=task) for _, row in df.iterrows()]


def prompt_text(tokenizer, messages: list[dict]) -> str:
    """The prompt as the model sees it: the chat template applied, ending where the answer starts."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def answer_text(tokenizer, messages: list[dict], answer: str) -> str:
    """What the chat template puts after the prompt for `answer`: the answer and the end-of-turn marker."""
    prompt = prompt_text(tokenizer, messages)
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("This chat template changes the prompt when an answer follows it, so the answer "
                         "cannot be cut off the end. Use a model whose template appends the assistant turn.")
    return full[len(prompt):]


def _ids(tokenizer, text: str) -> list[int]:
    # The template already wrote the special tokens (<|im_start|>, a BOS...): add none.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_example(tokenizer, messages: list[dict], answer: str) -> dict[str, list[int]]:
    """Token ids of prompt + answer, with `labels` = -100 on every prompt token.

    The prompt and the answer are tokenised separately, so the prompt's tokens are exactly those
    the model gets when it answers on its own (add_generation_prompt=True). The loss then only
    counts the answer and the end-of-turn marker: the model learns to answer, not to write prompts.
    """
    prompt_ids = _ids(tokenizer, prompt_text(tokenizer, messages))
    answer_ids = _ids(tokenizer, answer_text(tokenizer, messages, answer))
    return {
        "input_ids": prompt_ids + answer_ids,
        "attention_mask": [1] * (len(prompt_ids) + len(answer_ids)),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids,
    }


def encode_for_training(tokenizer, df: pd.DataFrame, max_length: int, context: bool = True,
                        instruction: str | None = None, task: Task | str | None = None):
    """A `datasets.Dataset` of encode_example() rows, one per row of `df`, answer = its label's word
    (the task's answer words; `instruction`: default the task's).

    Examples longer than `max_length` tokens are left out, with a warning that says how many:
    cutting them would cut off either the instructions or the answer.
    """
    import datasets

    task = load_task(task)
    rows = [encode_example(tokenizer, build_messages(row, context, instruction, task=task),
                           task.answers[row["label_text"]])
            for _, row in df.iterrows()]
    kept = [row for row in rows if len(row["input_ids"]) <= max_length]
    if rows and not kept:  # an empty training set would only fail later, inside the Trainer
        shortest = min(len(row["input_ids"]) for row in rows)
        raise ValueError(f"None of the {len(rows)} examples fits MAX_LENGTH={max_length} tokens (the shortest has "
                         f"{shortest}). Raise MAX_LENGTH to at least {shortest}, or shorten the instruction.")
    if len(kept) < len(rows):
        longest = max(len(row["input_ids"]) for row in rows)
        warnings.warn(f"{len(rows) - len(kept)} of {len(rows)} examples are longer than MAX_LENGTH={max_length} "
                      f"tokens (the longest has {longest}) and were left out. Raise MAX_LENGTH to keep them.",
                      stacklevel=2)
    return datasets.Dataset.from_list(kept)


@dataclass
class AnswerOnlyCollator:
    """Pads a batch on the right: input_ids with the pad token, attention_mask with 0, labels with -100.

    Padding gets label -100 by position, not by token id: for many chat models the pad token is
    the end-of-turn token, which the answer itself ends with and must be learned.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    @classmethod
    def for_tokenizer(cls, tokenizer, pad_to_multiple_of: int | None = None) -> "AnswerOnlyCollator":
        """A collator padding with the tokenizer's pad token (its end-of-sequence token if it has none)."""
        return cls(pad_token_id(tokenizer), pad_to_multiple_of)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for f in features:
            pad = length - len(f["input_ids"])
            batch["input_ids"].append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            batch["attention_mask"].append(list(f.get("attention_mask", [1] * len(f["input_ids"]))) + [0] * pad)
            batch["labels"].append(list(f.get("labels", f["input_ids"])) + [IGNORE_INDEX] * pad)
        return {name: torch.tensor(values, dtype=torch.long) for name, values in batch.items()}


def pad_token_id(tokenizer) -> int:
    """The tokenizer's pad token id, or its end-of-sequence id when it has no pad token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _progress(iterable, total: int, desc: str, show: bool):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not show, leave=False)


def _common_prefix_length(sequences: list[list[int]], limit: int) -> int:
    """How many leading tokens all sequences share, at most `limit`."""
    if not sequences:
        return 0
    first = sequences[0]
    n = 0
    while n < limit and all(s[n] == first[n] for s in sequences):
        n += 1
    return n


def _cache_argument(model) -> str:
    """The name of the forward argument (and output) for stored keys and values in this transformers version."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under a peft wrapper
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _forward_in_batches(model, features: list[dict], pad_id: int, batch_size: int, share_prefix: bool,
                        progress: bool, last_only: bool = False):
    """Run the model over `features` in batches; yield (batch, logits), both cut after the shared prefix.

    With `share_prefix`, the tokens every sequence starts with (the system prompt and the
    instructions) go through the model once; each batch then only computes its own tokens,
    attending to the stored keys and values of the prefix (the "KV cache" generation uses too).
    With `last_only`, the logits are only those of each sequence's last token (batch x vocabulary):
    the output layer then skips every other position, which saves time with a large vocabulary.
    """
    device = next(model.parameters()).device
    cache_name = _cache_argument(model)
    # The prefix must end before the last prompt token: its logits predict the answer's first token.
    prompt_lengths = [len(f["input_ids"]) if "labels" not in f else list(f["labels"]).count(IGNORE_INDEX)
                      for f in features]
    limit = min(prompt_lengths) - 1
    shared = _common_prefix_length([f["input_ids"] for f in features], limit) if share_prefix else 0
    prefix_cache = None
    if shared:
        prefix_ids = torch.tensor([features[0]["input_ids"][:shared]], device=device)
        prefix_cache = model(input_ids=prefix_ids, use_cache=True, logits_to_keep=1)[cache_name]
    collate = AnswerOnlyCollator(pad_id)
    starts = range(0, len(features), batch_size)
    for start in _progress(starts, len(starts), "scoring", progress):
        chunk = [{k: list(v)[shared:] for k, v in f.items()} for f in features[start:start + batch_size]]
        batch = collate(chunk)
        mask = batch["attention_mask"].to(device)
        kwargs = {"use_cache": False}
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)  # the forward pass appends to the cache: keep the original
            cache.batch_repeat_interleave(len(chunk))
            mask = torch.cat([torch.ones(len(chunk), shared, dtype=mask.dtype, device=device), mask], dim=1)
            kwargs = {"use_cache": True, cache_name: cache}
        if last_only:
            last = batch["attention_mask"].sum(dim=1).to(device) - 1
            keep = torch.unique(last)  # sorted positions; the model computes logits only there
            kwargs["logits_to_keep"] = keep
        logits = model(input_ids=batch["input_ids"].to(device), attention_mask=mask, **kwargs).logits
        if last_only:
            logits = logits[torch.arange(len(chunk), device=device), torch.searchsorted(keep, last)]
        yield batch, logits


@torch.no_grad()
def label_log_likelihoods(model, tokenizer, messages: list[list[dict]], answers: Sequence[str] | None = None,
                          batch_size: int = 8, share_prefix: bool = True, progress: bool = True,
                          task: Task | str | None = None) -> np.ndarray:
    """The log-likelihood of each label's answer given each prompt: an array (texts x labels).

    Columns follow `answers` (default: the task's answer words, in label-id order), so
    `scores.argmax(axis=1)` is the predicted label id, and it is always a valid label.
    When every answer is one distinct token, one forward pass per prompt reads all of them from
    the next-token probabilities. Otherwise prompt + answer is scored for each answer, summing
    the log-probabilities of the answer tokens and the end-of-turn marker (the tokens training uses).
    `share_prefix` computes the part all prompts share only once (same scores, less work).
    """
    if answers is None:
        task = load_task(task)
        answers = [task.answers[label] for label in task.labels]
    answers = list(answers)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}.")
    if not messages:
        return np.zeros((0, len(answers)))
    # One pass per prompt is enough when each answer is one token, the first the template writes.
    template_ids = [_ids(tokenizer, answer_text(tokenizer, messages[0], a)) for a in answers]
    word_ids = [_ids(tokenizer, a) for a in answers]
    single = (all(len(w) == 1 and t[:1] == w for w, t in zip(word_ids, template_ids))
              and len({w[0] for w in word_ids}) == len(answers))
    if single:
        features = [{"input_ids": _ids(tokenizer, prompt_text(tokenizer, m))} for m in messages]
    else:
        features = [encode_example(tokenizer, m, a) for m in messages for a in answers]
    was_training = model.training
    model.eval()
    parts = []
    try:
        for batch, logits in _forward_in_batches(model, features, pad_token_id(tokenizer), batch_size,
                                                 share_prefix, progress, last_only=single):
            device = logits.device
            if single:  # logits: the prompt's last token, which predicts the answer's first
                next_token = logits.float().log_softmax(dim=-1)
                parts.append(next_token[:, [w[0] for w in word_ids]].cpu())
            else:
                # The logits at position t predict token t + 1.
                targets = batch["labels"][:, 1:].to(device)
                mask = targets != IGNORE_INDEX
                picked = logits[:, :-1][mask].float().log_softmax(dim=-1)
                token_scores = torch.zeros(targets.shape, device=device)
                token_scores[mask] = picked.gather(1, targets[mask].unsqueeze(1)).squeeze(1)
                parts.append(token_scores.sum(dim=1).cpu())
    finally:
        model.train(was_training)
    result = torch.cat(parts).reshape(len(messages), len(answers)).numpy()
    if not np.isfinite(result).all():
        raise FloatingPointError("Some scores are not finite numbers: the model overflowed. In float16 this "
                                 "can happen with models trained in bfloat16; load the model in float32.")
    return result


def predict_labels(model, tokenizer, messages: list[list[dict]], batch_size: int = 8, progress: bool = True,
                   task: Task | str | None = None) -> np.ndarray:
    """The label id (the task's, TASK.labels) whose answer is most likely for each prompt."""
    return label_log_likelihoods(model, tokenizer, messages, batch_size=batch_size, progress=progress,
                                 task=task).argmax(axis=1)


@torch.no_grad()
def generate_answers(model, tokenizer, messages: list[list[dict]], max_new_tokens: int = 10) -> list[str]:
    """Let the model write its answer to each prompt (greedy decoding), as raw text.

    One prompt at a time: slower than batches, but nothing about padding can change the answers.
    """
    from transformers import GenerationConfig

    # A config of our own: greedy, whatever sampling settings the model ships with.
    eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                              pad_token_id=pad_token_id(tokenizer))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    answers = []
    try:
        for m in messages:
            ids = torch.tensor([_ids(tokenizer, prompt_text(tokenizer, m))], device=device)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
            answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    finally:
        model.train(was_training)
    return answers


def _phrase(text: str) -> str:
    """A regular expression for `text` as a whole phrase, any run of spaces matching any other."""
    words = [re.escape(word) for word in text.lower().split()]
    return r"(?<!\w)" + r"\s*".join(words) + r"(?!\w)"


def parse_answer(text: str | None, task: Task | str | None = None) -> str | None:
    """The label a free-text answer names, or None when it names none or more than one.

    Accepts the option letter ("B", "b)", "(c)"), the task's answer word ("negative", "Other.")
    and its label names ("Military: Positive"), in any case, with an "Answer:" prefix. An answer
    that names two different labels is ambiguous and gives None, never a guess.
    """
    if text is None:
        return None
    task = load_task(task)
    clean = text.strip().lower()
    clean = re.sub(r"^(the\s+)?answer\s*(is)?\s*[:\-]?\s*", "", clean).strip()
    found = {label for label in task.labels
             if re.search(_phrase(label), clean) or re.search(_phrase(task.answers[label]), clean)}
    letters = "".join(task.letters).lower()
    # A lone option letter, alone or followed by ")", "." or ":" e.g. "B", "b)", "(c)", "Answer: A."
    letter = re.match(rf"^\(?([{letters}])(?:\)|\.|:|\s*$)", clean) if letters else None
    if letter:
        found.add(task.letters[letter.group(1).upper()])
    return found.pop() if len(found) == 1 else None


def parse_table(df: pd.DataFrame, raw_answers: Sequence[str], task: Task | str | None = None) -> pd.DataFrame:
    """Quote, true label, the model's raw answer and what parse_answer() makes of it (for `task`), per row.

    `raw_answers` belong to the rows of `df` in order, one each.
    """
    if len(raw_answers) != len(df):
        raise ValueError(f"{len(raw_answers)} answers for {len(df)} rows: pass the rows the answers were generated "
                         "for, e.g. df.head(len(answers)).")
    task = load_task(task)
    parsed = [parse_answer(a, task) for a in raw_answers]
    return pd.DataFrame({
        "quote": df["text_original"].str.slice(0, 80).values,
        "true label": df["label_text"].values,
        "raw answer": [repr(a) for a in raw_answers],
        "parsed": [p if p is not None else "(unparseable)" for p in parsed],
    })


def model_size_mb(model) -> float:
    """Megabytes the model's weights take in memory, at the dtype they are loaded in."""
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6


def files_mb(folder) -> pd.DataFrame:
    """The files in `folder` with their size in MB (a table, largest first)."""
    import pathlib

    files = [p for p in pathlib.Path(folder).rglob("*") if p.is_file()]
    sizes = {str(p.relative_to(folder)): round(p.stat().st_size / 1e6, 3) for p in files}
    return pd.DataFrame({"MB": sizes}).sort_values("MB", ascending=False)
