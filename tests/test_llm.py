"""utils.llm: answer-only labels, padding, the answer parser and label scoring (notebook 7).

Uses the offline SmolLM2-135M-Instruct stand-in; no training, so the whole file runs in seconds.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import utils
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


# ---------------------------------------------------------------- the scoring path notebook 7 uses

# Quotes of eight different lengths: with the stand-in's tokenizer every prompt has its own length,
# so a batch of eight is padded and the last-token logits sit at eight different positions.
QUOTES = [
    "We will buy new frigates for the navy.",
    "Defence spending must rise to two percent of our national income, every year, without fail.",
    "Peace.",
    "We will abolish conscription and cut the army by half within the next parliament.",
    "Schools need more teachers.",
    "Our alliance duties come first, and we will honour every one of them.",
    "No more wars abroad; bring the soldiers home now.",
    "Taxes will fall for families with children, for pensioners and for small firms in the countryside.",
]
QUOTE_ROWS = pd.DataFrame({"text_preceding": "", "text_original": QUOTES, "text_following": "",
                           "label_text": [LABELS[i % 3] for i in range(len(QUOTES))]})


def forward_calls(model):
    """Record the keyword arguments of each forward pass of `model` (the base model under a peft wrapper)."""
    calls = []
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    handle = base.register_forward_pre_hook(lambda module, args, kwargs: calls.append(dict(kwargs)), with_kwargs=True)
    return calls, handle


def assert_multi_length_shared_scoring_matches_one_at_a_time(model, tokenizer):
    messages = utils.messages_for(QUOTE_ROWS, context=False)
    lengths = [len(template_ids(tokenizer, m)) for m in messages]
    assert len(set(lengths)) == len(QUOTES), lengths  # all different: the padded, multi-length branch

    calls, handle = forward_calls(model)
    try:
        shared = label_log_likelihoods(model, tokenizer, messages, batch_size=8, share_prefix=True, progress=False)
    finally:
        handle.remove()
    prefix_pass, batch_pass = calls  # the shared prefix once, then the one batch of eight
    assert prefix_pass["input_ids"].shape[0] == 1
    shared_length = prefix_pass["input_ids"].shape[1]
    assert 0 < shared_length < min(lengths)
    assert batch_pass["input_ids"].shape == (8, max(lengths) - shared_length)
    kept = batch_pass["logits_to_keep"]  # the logits computed: each prompt's last token, 8 positions
    assert torch.is_tensor(kept) and kept.tolist() == sorted(n - shared_length - 1 for n in lengths)

    alone = np.vstack([label_log_likelihoods(model, tokenizer, [m], batch_size=1, share_prefix=False, progress=False)
                       for m in messages])
    assert shared.shape == (8, 3) and np.isfinite(shared).all()
    np.testing.assert_allclose(shared, alone, atol=1e-4, rtol=0)
    return shared


def test_batched_prompts_of_different_lengths_score_as_one_at_a_time(model, tokenizer):
    assert_multi_length_shared_scoring_matches_one_at_a_time(model, tokenizer)
    assert not model.training


@pytest.fixture(scope="module")
def lora_model():
    """The stand-in with a LoRA adapter whose weights are random (not zero), so that it changes the scores."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(modes.llm_stand_in(), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                        init_lora_weights=False)
    return get_peft_model(base, config)


def test_a_peft_model_scores_alike_and_stays_in_training_mode(lora_model, model, tokenizer):
    lora_model.train()  # as notebook 7 leaves it after trainer.train()
    scores = assert_multi_length_shared_scoring_matches_one_at_a_time(lora_model, tokenizer)
    assert lora_model.training and all(m.training for m in lora_model.modules())
    base_scores = label_log_likelihoods(model, tokenizer, utils.messages_for(QUOTE_ROWS, context=False),
                                        progress=False)
    assert np.abs(scores - base_scores).max() > 0.01  # the adapter was used, not only the base model


def test_scoring_leaves_an_eval_model_in_eval_mode(model, tokenizer):
    model.eval()
    label_log_likelihoods(model, tokenizer, SHORT, progress=False)
    assert not model.training and not any(m.training for m in model.modules())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_scores_raise_a_named_error_and_restore_the_mode(model, tokenizer, bad):
    # An overflow stand-in: the output layer's logits become NaN (or +inf, whose softmax is NaN).
    handle = model.lm_head.register_forward_hook(lambda module, args, output: torch.full_like(output, bad))
    model.train()
    try:
        with pytest.raises(FloatingPointError, match="not finite numbers.*load the model in float32"):
            label_log_likelihoods(model, tokenizer, SHORT, progress=False)
        assert model.training  # restored although scoring failed
    finally:
        handle.remove()
        model.eval()


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_batch_size_must_be_a_positive_whole_number(model, tokenizer, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a whole number of at least 1"):
        label_log_likelihoods(model, tokenizer, SHORT, batch_size=batch_size, progress=False)


def test_predict_labels_is_the_most_likely_label_id(model, tokenizer):
    messages = utils.messages_for(QUOTE_ROWS.iloc[:3])
    predicted = utils.predict_labels(model, tokenizer, messages, batch_size=2, progress=False)
    scores = label_log_likelihoods(model, tokenizer, messages, progress=False)
    assert predicted.tolist() == scores.argmax(axis=1).tolist()
    assert len(predicted) == 3 and set(predicted) <= {0, 1, 2}


# ---------------------------------------------------------------- generation and its table


def greedy_by_hand(model, tokenizer, messages, max_new_tokens):
    """Greedy decoding without generate(): the whole sequence through the model for every new token."""
    ids = template_ids(tokenizer, messages)
    new = []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            token = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
        new.append(token)
        if token == tokenizer.convert_tokens_to_ids("<|im_end|>"):
            break
    return tokenizer.decode(new, skip_special_tokens=True)


def test_generate_answers_is_greedy_whatever_the_models_sampling_settings(model, tokenizer):
    expected = [greedy_by_hand(model, tokenizer, m, max_new_tokens=6) for m in SHORT]
    sampling = model.generation_config.do_sample, model.generation_config.temperature
    model.generation_config.do_sample, model.generation_config.temperature = True, 5.0  # would be random
    model.train()
    try:
        answers = utils.generate_answers(model, tokenizer, SHORT, max_new_tokens=6)
        assert model.training  # restored
    finally:
        model.generation_config.do_sample, model.generation_config.temperature = sampling
        model.eval()
    assert answers == expected
    assert all(len(tokenizer(a, add_special_tokens=False)["input_ids"]) <= 6 for a in answers)


def test_parse_table_lines_up_rows_and_answers():
    long_quote = "A" * 100
    df = pd.DataFrame({"text_original": [long_quote, "Cut the army.", "Build schools."],
                       "label_text": ["Military: Positive", "Military: Negative", "Other"]}, index=[7, 3, 5])
    table = utils.parse_table(df, ["B", "maybe both", " Other.\n"])
    assert list(table.columns) == ["quote", "true label", "raw answer", "parsed"]
    assert table["quote"].tolist() == ["A" * 80, "Cut the army.", "Build schools."]
    assert table["true label"].tolist() == df["label_text"].tolist()
    assert table["raw answer"].tolist() == ["'B'", "'maybe both'", "' Other.\\n'"]  # repr: spaces visible
    assert table["parsed"].tolist() == ["Military: Negative", "(unparseable)", "Other"]
    with pytest.raises(ValueError, match="2 answers for 3 rows"):
        utils.parse_table(df, ["B", "C"])


def test_messages_for_builds_one_prompt_per_row_in_order():
    rows = QUOTE_ROWS.iloc[[2, 0, 1]].assign(text_preceding=["Before.", "", "Earlier."])
    messages = utils.messages_for(rows)
    assert len(messages) == 3
    assert messages == [build_messages(row) for _, row in rows.iterrows()]
    assert [m[0]["role"] for m in messages] == ["system"] * 3
    assert [f'Quote: "{q}"' in m[-1]["content"] for m, q in zip(messages, rows["text_original"])] == [True] * 3
    assert "Sentence before: Before." in messages[0][-1]["content"]
    plain = utils.messages_for(rows, context=False, instruction="Classify the quote.")
    assert all("Sentence before" not in m[-1]["content"] for m in plain)
    assert all(m[-1]["content"].startswith("Classify the quote.\n\n") for m in plain)


# ---------------------------------------------------------------- training data


def test_encode_for_training_leaves_out_long_examples_and_says_how_many(tokenizer):
    rows = QUOTE_ROWS.iloc[[2, 0, 7]]  # short, middle, long quote
    lengths = [len(encode_example(tokenizer, build_messages(row), ANSWERS[row["label_text"]])["input_ids"])
               for _, row in rows.iterrows()]
    assert lengths[0] < lengths[1] < lengths[2]
    with pytest.warns(UserWarning) as caught:
        kept = utils.encode_for_training(tokenizer, rows, max_length=lengths[1])
    assert str(caught[0].message).startswith(
        f"1 of 3 examples are longer than MAX_LENGTH={lengths[1]} tokens (the longest has {lengths[2]})")
    assert "Raise MAX_LENGTH" in str(caught[0].message)
    assert kept.num_rows == 2
    expected = [encode_example(tokenizer, build_messages(row), ANSWERS[row["label_text"]])
                for _, row in rows.iloc[:2].iterrows()]
    assert [dict(r) for r in kept] == expected  # the right rows, in order, with their answer-only labels


def test_encode_for_training_keeps_everything_that_fits_without_a_warning(tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = utils.encode_for_training(tokenizer, QUOTE_ROWS, max_length=10_000, context=False)
    assert kept.num_rows == len(QUOTES)
    assert all(IGNORE_INDEX in r["labels"] and r["labels"][-1] != IGNORE_INDEX for r in kept)


def test_encode_for_training_with_nothing_left_is_an_error(tokenizer):
    with pytest.raises(ValueError, match=r"None of the 8 examples fits MAX_LENGTH=50 tokens \(the shortest has \d+\)"):
        utils.encode_for_training(tokenizer, QUOTE_ROWS, max_length=50)
