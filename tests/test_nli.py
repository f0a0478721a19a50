"""The BERT-NLI plumbing: pairs, the model's entailment label, and pairs back to one answer per text."""

import numpy as np
import pandas as pd
import pytest
from transformers import BertConfig

import utils
from utils import nli

LABELS = ["Military: Negative", "Military: Positive", "Other"]


@pytest.fixture
def texts():
    return pd.DataFrame({
        "text": ["We will cut the defence budget.", "More ships for the navy.", "Lower taxes for families.",
                 "Our soldiers deserve better pay.", "Schools need more teachers."],
        "label_text": ["Military: Negative", "Military: Positive", "Other", "Military: Positive", "Other"],
    })


def hand_probabilities(pairs, right=0.9, wrong=0.2):
    """Entailment probabilities by hand: high for each text's true hypothesis, low for the others."""
    return np.where(pairs["hypothesis_label"] == pairs["text_label"], right, wrong)


# ---------------------------------------------------------------- pairs


def test_every_text_meets_every_hypothesis_once(texts):
    pairs = utils.make_nli_pairs(texts, utils.HYPOTHESES, 0, 1)
    assert len(pairs) == len(texts) * len(utils.HYPOTHESES)
    assert list(pairs.columns) == ["text_id", "premise", "hypothesis", "hypothesis_label", "text_label", "label"]
    for _, group in pairs.groupby("text_id"):
        assert sorted(group["hypothesis_label"]) == sorted(utils.HYPOTHESES)
    assert (pairs.groupby("text_id")["premise"].nunique() == 1).all()
    first = pairs[pairs["text_id"] == 0]
    assert list(first["hypothesis"]) == list(utils.HYPOTHESES.values())
    assert set(first["premise"]) == {texts.loc[0, "text"]}


def test_exactly_one_entailment_per_text_and_it_is_the_true_label(texts):
    # An NLI model whose entailment id is 1, not 0: the ids come from the caller, never assumed.
    pairs = utils.make_nli_pairs(texts, utils.HYPOTHESES, entailment_id=1, not_entailment_id=0)
    entailed = pairs[pairs["label"] == 1]
    assert list(entailed["text_id"]) == list(range(len(texts)))
    assert list(entailed["hypothesis_label"]) == list(texts["label_text"])
    assert set(pairs["label"]) == {0, 1} and (pairs["label"] == 0).sum() == 2 * len(texts)


def test_a_label_without_hypothesis_is_an_error_that_names_it(texts):
    partial = {k: v for k, v in utils.HYPOTHESES.items() if k != "Other"}
    with pytest.raises(ValueError, match=r"No hypothesis for label\(s\) \['Other'\].*Military: Negative"):
        utils.make_nli_pairs(texts, partial, 0, 1)


def test_empty_hypothesis_is_an_error(texts):
    with pytest.raises(ValueError, match="empty"):
        utils.make_nli_pairs(texts, {**utils.HYPOTHESES, "Other": "  "}, 0, 1)


def test_texts_without_labels_still_make_pairs(texts):
    pairs = utils.make_nli_pairs(texts[["text"]], utils.HYPOTHESES, 0, 1)
    assert len(pairs) == 15 and "label" not in pairs.columns


def test_hypotheses_cover_the_course_labels():
    assert sorted(utils.HYPOTHESES) == sorted(utils.LABELS)
    assert all(sentence.endswith(".") for sentence in utils.HYPOTHESES.values())


# ---------------------------------------------------------------- the model's label ids


@pytest.mark.parametrize(
    "id2label, expected",
    [
        ({0: "entailment", 1: "not_entailment"}, (0, 1)),  # MoritzLaurer/*-zeroshot-v2.0
        ({0: "not_entailment", 1: "entailment"}, (1, 0)),
        ({0: "entailment", 1: "neutral", 2: "contradiction"}, (0, 2)),  # MNLI models
        ({0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}, (2, 0)),  # roberta-large-mnli spelling
        ({0: "Not entailment", 1: "Entailment"}, (1, 0)),
    ],
)
def test_label_ids_are_read_from_the_config(id2label, expected):
    config = BertConfig(num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    assert utils.nli_label_ids(config) == expected


def test_a_config_without_entailment_is_a_clear_error():
    with pytest.raises(ValueError, match="no 'entailment' label.*load_nli_model"):
        utils.nli_label_ids(BertConfig())  # a plain BERT: LABEL_0, LABEL_1
    military = BertConfig(num_labels=3, id2label=utils.ID2LABEL, label2id=utils.LABEL2ID)
    with pytest.raises(ValueError, match="Military: Negative"):
        utils.nli_label_ids(military)


def test_entailment_probabilities_take_the_entailment_column():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    p0 = utils.entailment_probabilities(logits, entailment_id=0)
    p1 = utils.entailment_probabilities((logits,), entailment_id=1)  # the Trainer may give a tuple
    np.testing.assert_allclose(p0, 1 / (1 + np.exp([-2.0, 2.0, 0.0])))
    np.testing.assert_allclose(p0 + p1, 1.0)


# ---------------------------------------------------------------- from pairs back to texts


def test_aggregation_is_right_when_the_pairs_are_shuffled(texts):
    pairs = utils.make_nli_pairs(texts, utils.HYPOTHESES, 0, 1)
    # By hand: text 0 -> Positive, 1 -> Other, 2 -> Negative, 3 -> Negative, 4 -> Positive.
    wanted = ["Military: Positive", "Other", "Military: Negative", "Military: Negative", "Military: Positive"]
    probs = np.where(pairs["hypothesis_label"] == np.repeat(wanted, 3), 0.8, 0.1)
    expected = [utils.LABEL2ID[label] for label in wanted]
    np.testing.assert_array_equal(utils.nli_predict(pairs, probs), expected)

    order = np.random.default_rng(0).permutation(len(pairs))
    shuffled, shuffled_probs = pairs.iloc[order].reset_index(drop=True), probs[order]
    np.testing.assert_array_equal(utils.nli_predict(shuffled, shuffled_probs), expected)
    # The classic silent bug: reshaping shuffled probabilities to (texts, labels) on trust.
    naive = shuffled_probs.reshape(len(texts), 3).argmax(axis=1)
    assert list(naive) != expected


def test_scores_table_has_texts_as_rows_and_labels_in_label_id_order(texts):
    pairs = utils.make_nli_pairs(texts, {k: utils.HYPOTHESES[k] for k in reversed(LABELS)}, 0, 1)
    table = utils.nli_scores(pairs, hand_probabilities(pairs))
    assert list(table.columns) == LABELS  # label-id order, whatever the dict order
    assert list(table.index) == list(range(len(texts)))
    assert table.loc[1, "Military: Positive"] == 0.9 and table.loc[1, "Other"] == 0.2


def test_round_trip_true_hypothesis_highest_gives_perfect_predictions(texts):
    pairs = utils.make_nli_pairs(texts, utils.HYPOTHESES, 0, 1)
    y_pred = utils.nli_predict(pairs, hand_probabilities(pairs))
    np.testing.assert_array_equal(y_pred, texts["label_text"].map(utils.LABEL2ID))
    np.testing.assert_array_equal(utils.nli_true_labels(pairs), y_pred)
    assert utils.classification_metrics(utils.nli_true_labels(pairs), y_pred)["f1_macro"] == 1.0


def test_aggregation_accepts_a_datasets_dataset(texts):
    import datasets  # required (requirements.txt): a missing package must fail, not skip
    pairs = utils.make_nli_pairs(texts, utils.HYPOTHESES, 0, 1)
    dataset = datasets.Dataset.from_pandas(pairs, preserve_index=False).shuffle(seed=1)
    probs = hand_probabilities(dataset.to_pandas())
    np.testing.assert_array_equal(utils.nli_predict(dataset, probs), texts["label_text"].map(utils.LABEL2ID))


@pytest.mark.parametrize("broken", ["too_few", "duplicate", "unknown_label"])
def test_aggregation_refuses_pairs_it_cannot_match(texts, broken):
    pairs = utils.make_nli_pairs(texts, utils.HYPOTHESES, 0, 1)
    probs = hand_probabilities(pairs)
    if broken == "too_few":
        pairs, probs = pairs.iloc[:-1], probs[:-1]
    elif broken == "duplicate":
        pairs = pairs.assign(hypothesis_label=pairs["hypothesis_label"].replace("Other", "Military: Negative"))
    else:
        pairs = pairs.assign(hypothesis_label=pairs["hypothesis_label"].replace("Other", "Peace"))
    with pytest.raises(ValueError):
        utils.nli_predict(pairs, probs)
    with pytest.raises(ValueError, match="3 probabilities"):
        utils.nli_predict(utils.make_nli_pairs(texts, utils.HYPOTHESES, 0, 1), probs[:3])


# ---------------------------------------------------------------- compute_metrics for the Trainer


def logits_from(probs, entailment_id):
    """2-class logits whose softmax gives `probs` for the entailment class."""
    logit = np.log(probs / (1 - probs))
    out = np.zeros((len(probs), 2))
    out[:, entailment_id] = logit
    return out


def test_compute_metrics_scores_texts_not_pairs(texts):
    from transformers.trainer_utils import EvalPrediction

    pairs = utils.make_nli_pairs(texts, utils.HYPOTHESES, 1, 0)
    compute = utils.nli_compute_metrics(pairs, entailment_id=1)
    perfect = compute(EvalPrediction(predictions=logits_from(hand_probabilities(pairs), 1),
                                     label_ids=pairs["label"].to_numpy()))
    assert perfect["f1_macro"] == 1.0 and perfect["accuracy"] == 1.0
    # Every text says "Other": 2 of 5 texts right, though 11 of 15 pairs would be right.
    always_other = np.where(pairs["hypothesis_label"] == "Other", 0.9, 0.1)
    metrics = compute(EvalPrediction(predictions=logits_from(always_other, 1), label_ids=pairs["label"].to_numpy()))
    assert metrics["accuracy"] == pytest.approx(2 / 5)


def test_compute_metrics_notices_pairs_in_another_order(texts):
    from transformers.trainer_utils import EvalPrediction

    pairs = utils.make_nli_pairs(texts, utils.HYPOTHESES, 0, 1)
    compute = utils.nli_compute_metrics(pairs, entailment_id=0)
    reordered = pairs["label"].to_numpy()[::-1]
    with pytest.raises(ValueError, match="order"):
        compute(EvalPrediction(predictions=logits_from(hand_probabilities(pairs), 0), label_ids=reordered))


# ---------------------------------------------------------------- the paper's figures


def test_paper_reference_uses_the_results_log_names():
    ref = utils.PAPER_REFERENCE
    assert {"approach", "n_train", "f1_macro"} <= set(ref.columns)
    assert set(ref["approach"]) <= {utils.APPROACH_BERT, utils.APPROACH_NLI, utils.APPROACH_NLI_ZERO_SHOT}
    assert ref.set_index("approach").loc[utils.APPROACH_NLI, "f1_macro"] == 0.725
    assert nli.NLI_ID2LABEL == {0: "entailment", 1: "not_entailment"}


# ---------------------------------------------------------------- loading (tiny random models, no download)


def tiny_config(**kwargs):
    return BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=16, **kwargs)


def test_a_plain_encoder_gets_a_fresh_nli_head_and_a_warning(tmp_path):
    from transformers import BertModel

    BertModel(tiny_config()).save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="no NLI head"):
        model = utils.load_nli_model(str(tmp_path))
    assert model.config.id2label == {0: "entailment", 1: "not_entailment"}
    assert utils.nli_label_ids(model.config) == (0, 1)


def test_an_nli_checkpoint_keeps_its_own_labels(tmp_path, recwarn):
    from transformers import BertForSequenceClassification

    id2label = {0: "contradiction", 1: "neutral", 2: "entailment"}
    config = tiny_config(num_labels=3, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    model = utils.load_nli_model(str(tmp_path))
    assert model.config.num_labels == 3 and utils.nli_label_ids(model.config) == (2, 0)
    assert not [w for w in recwarn if "NLI head" in str(w.message)]
