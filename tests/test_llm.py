"""utils.llm: answer-only labels, padding, the answer parser and label scoring (notebook 7).

Uses the offline SmolLM2-135M-Instruct stand-in; no training, so the whole file runs in seconds.
"""

import numpy as np
import pytest
import torch

from utils import LABELS, modes
from utils.llm import (ANSWERS, IGNORE_INDEX, AnswerOnlyCollator, build_messages, encode_example,
                       label_log_likelihoods, parse_answer, prompt_text)

ROW = {"text_preceding": "Our soldiers serve with honour.", "text_original": "We will buy new frigates for the navy.",
       "text_following": ""}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(modes.llm_stand_in())


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(modes.llm_stand_in(), dtype=torch.float32).eval()


def template_ids(tokenizer, messages):
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


# ---------------------------------------------------------------- prompt and masking


def test_prompt_marks_the_quote_in_its_context_and_leaves_out_empty_context():
    user = build_messages(ROW)[-1]["content"]
    assert 'Quote: "We will buy new frigates for the navy."' in user
    assert "Sentence before: Our soldiers serve with honour." in user
    assert "Sentence after" not in user  # empty, so left out
    assert "Sentence before" not in build_messages(ROW, context=False)[-1]["content"]
    assert all(word in user for word in ANSWERS.values())


def test_prompt_tokens_are_ignored_and_answer_tokens_are_learned(tokenizer):
    messages = build_messages(ROW)
    example = encode_example(tokenizer, messages, "negative")
    prompt = template_ids(tokenizer, messages)
    n = len(prompt)

    assert example["input_ids"][:n] == prompt  # exactly what the model sees when it answers alone
    assert example["labels"][:n] == [IGNORE_INDEX] * n
    answer_labels = example["labels"][n:]
    assert answer_labels == example["input_ids"][n:] and IGNORE_INDEX not in answer_labels
    assert tokenizer.decode(answer_labels).startswith("negative<|im_end|>")  # the end-of-turn marker is learned
    assert example["attention_mask"] == [1] * len(example["input_ids"])


def test_collator_pads_with_ignored_labels_and_keeps_the_answers_end_of_turn(tokenizer):
    short = encode_example(tokenizer, [{"role": "user", "content": "Hi"}], "other")
    long = encode_example(tokenizer, build_messages(ROW), "positive")
    pad_id = tokenizer.pad_token_id
    assert pad_id == tokenizer.convert_tokens_to_ids("<|im_end|>")  # why padding is masked by position

    batch = AnswerOnlyCollator(pad_id)([short, long])

    width = len(long["input_ids"])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, width)
    n = len(short["input_ids"])
    assert batch["input_ids"][0, n:].eq(pad_id).all()
    assert batch["attention_mask"][0, n:].eq(0).all() and batch["attention_mask"][0, :n].eq(1).all()
    assert batch["labels"][0, n:].eq(IGNORE_INDEX).all()
    assert batch["labels"][0, :n].tolist() == short["labels"]  # the answer's own <|im_end|> keeps its label
    assert batch["labels"][1].tolist() == long["labels"]
    assert AnswerOnlyCollator(pad_id, pad_to_multiple_of=8)([short])["input_ids"].shape[1] % 8 == 0


# ---------------------------------------------------------------- parsing free-text answers


@pytest.mark.parametrize("text, label", [
    ("positive", "Military: Positive"),
    ("  Negative.\n", "Military: Negative"),
    ("OTHER", "Other"),
    ("B", "Military: Negative"),
    ("b)", "Military: Negative"),
    ("(c)", "Other"),
    ("A.", "Military: Positive"),
    ("Answer: Military: Positive", "Military: Positive"),
    ("The answer is: negative", "Military: Negative"),
    ("B) negative", "Military: Negative"),
    ("Military: Negative", "Military: Negative"),
    ("a negative", "Military: Negative"),  # "a" followed by a word is an article, not option A
])
def test_parser_reads_words_letters_and_label_names(text, label):
    assert parse_answer(text) == label


@pytest.mark.parametrize("text", [
    "", "   ", None,
    "positive or negative",  # two different labels: ambiguous
    "A) negative",           # the letter and the word disagree
    "neutral",               # not an option
    "Sentence after: Surplus electricity will be exported",
])
def test_parser_returns_none_when_unsure(text):
    assert parse_answer(text) is None


def test_parser_never_maps_to_an_unknown_label():
    for text in ["positive", "b", "other", "Military: Positive"]:
        assert parse_answer(text) in LABELS


# ---------------------------------------------------------------- scoring the labels

SHORT = [
    [{"role": "user", "content": "Reply with the word yes."}],
    [{"role": "user", "content": "Reply with the word no."}],
]


def manual_log_likelihood(model, tokenizer, messages, answer):
    example = encode_example(tokenizer, messages, answer)
    ids = torch.tensor([example["input_ids"]])
    with torch.no_grad():
        logprobs = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
    targets = torch.tensor(example["labels"][1:])
    keep = targets != IGNORE_INDEX
    return logprobs[keep].gather(1, targets[keep].unsqueeze(1)).sum().item()


def test_scoring_picks_the_answer_the_prompt_asks_for(model, tokenizer):
    scores = label_log_likelihoods(model, tokenizer, SHORT, answers=["yes", "no"], progress=False)
    assert scores.shape == (2, 2)
    assert scores.argmax(axis=1).tolist() == [0, 1]


def test_shared_prefix_gives_the_same_scores(model, tokenizer):
    shared = label_log_likelihoods(model, tokenizer, SHORT, answers=["yes", "no"], progress=False)
    alone = label_log_likelihoods(model, tokenizer, SHORT, answers=["yes", "no"], share_prefix=False,
                                  batch_size=1, progress=False)
    np.testing.assert_allclose(shared, alone, atol=1e-3)


def test_multi_token_answers_sum_their_tokens_log_probabilities(model, tokenizer):
    answers = ["yes indeed", "no"]  # not all one token: every answer is scored in full
    scores = label_log_likelihoods(model, tokenizer, SHORT, answers=answers, batch_size=3, progress=False)
    expected = [[manual_log_likelihood(model, tokenizer, m, a) for a in answers] for m in SHORT]
    np.testing.assert_allclose(scores, expected, atol=1e-3)


def test_one_token_answers_are_read_from_the_next_token_probabilities(model, tokenizer):
    scores = label_log_likelihoods(model, tokenizer, SHORT[:1], progress=False)  # default: the label words
    ids = torch.tensor([template_ids(tokenizer, SHORT[0])])
    with torch.no_grad():
        next_token = model(input_ids=ids).logits[0, -1].float().log_softmax(-1)
    words = [tokenizer.convert_tokens_to_ids(ANSWERS[label]) for label in LABELS]  # columns in label-id order
    np.testing.assert_allclose(scores[0], next_token[words].numpy(), atol=1e-3)


def test_prompt_text_ends_where_the_answer_starts(tokenizer):
    assert prompt_text(tokenizer, SHORT[0]).endswith("<|im_start|>assistant\n")
