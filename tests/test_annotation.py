"""utils.annotation: connecting, the review dataset, reading answers back, agreement.

The tests marked with the `argilla` fixture talk to a real Argilla server: the one named by
ARGILLA_API_URL / ARGILLA_API_KEY, else one started here from tests/argilla_server (when its
venv exists), else they are skipped with the reason. The test server's search engine is a
stand-in (tests/argilla_server/README.md): these tests check that data round-trips, not ranking.
"""

import pathlib
import uuid

import numpy as np
import pandas as pd
import pytest

import utils
from utils import annotation, annotation_answers

ROOT = pathlib.Path(__file__).resolve().parent.parent


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def review_table(n: int = 6, dims: int = 4) -> pd.DataFrame:
    """A table shaped like notebook 5's label issues, with suggestion scores."""
    rng = np.random.default_rng(0)
    labels = [utils.LABELS[i % 3] for i in range(n)]
    return pd.DataFrame({
        "text_original": [f"Quote number {i} about the army." for i in range(n)],
        "text_preceding": ["Before." if i % 2 else "" for i in range(n)],
        "text_following": ["After." for _ in range(n)],
        "text": [f"text {i}" for i in range(n)],
        "label_text": labels,
        "suggested_label": [utils.LABELS[(i + 1) % 3] for i in range(n)],
        "suggested_score": np.linspace(0.5, 0.9, n),
        "label_quality": np.linspace(0.01, 0.3, n),
        "is_label_issue": [i < n // 2 for i in range(n)],
        "split": "train",
        "embedding": [rng.normal(size=dims).tolist() for _ in range(n)],
    })


# ---------------------------------------------------------------- without a server


def test_credentials_come_from_the_environment_and_never_show_the_key(monkeypatch):
    monkeypatch.setenv("ARGILLA_API_URL", "http://example.test:6900")
    monkeypatch.setenv("ARGILLA_API_KEY", "secret-key-123")
    creds = utils.argilla_credentials(ask=False)
    assert (creds.api_url, creds.api_key, creds.source) == ("http://example.test:6900", "secret-key-123", "environment")
    assert "secret-key-123" not in repr(creds) and "secret-key-123" not in str(creds)


def test_no_server_configured_is_a_message_not_a_traceback(monkeypatch):
    monkeypatch.delenv("ARGILLA_API_URL", raising=False)
    monkeypatch.delenv("ARGILLA_API_KEY", raising=False)

    def nobody_answers(prompt=""):
        raise EOFError

    monkeypatch.setattr("builtins.input", nobody_answers)
    creds = utils.argilla_credentials(ask=True)
    assert creds.api_url is None and creds.source == "nowhere"
    with pytest.raises(utils.AnnotationError, match="No Argilla server is configured") as caught:
        utils.connect(creds)
    shown = caught.value._render_traceback_()
    assert shown[0].startswith("AnnotationError: No Argilla server is configured")
    assert any("Colab" in line for line in shown) and not any("Traceback" in line for line in shown)


def test_missing_key_is_named():
    with pytest.raises(utils.AnnotationError, match="API key is not"):
        utils.connect(utils.ArgillaCredentials("http://127.0.0.1:1", None))


@pytest.mark.parametrize("url, message", [
    ("localhost:6900", "must start with http"),
    ("https://huggingface.co/spaces/Jane/my_argilla", "https://jane-my-argilla.hf.space"),
    ("http://localhost:6900/api/v1", "without"),
])
def test_wrong_addresses_are_explained(url, message):
    with pytest.raises(utils.AnnotationError, match=message.replace(".", r"\.")):
        annotation.check_api_url(url)


def test_nothing_listens_is_a_clear_message():
    with pytest.raises(utils.AnnotationError, match="No Argilla server answers at http://127.0.0.1:9"):
        utils.connect(utils.ArgillaCredentials("http://127.0.0.1:9", "any-key"), timeout=5)


def test_record_ids_are_stable_and_unique():
    df = review_table(4)
    twice = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    ids = utils.record_ids(twice)
    assert ids.is_unique and ids.iloc[4] == ids.iloc[0] + "-2"
    assert utils.record_ids(df).tolist() == ids.iloc[:4].tolist()
    relabelled = df.assign(label_text="Other")  # row 0 was "Military: Negative"
    assert utils.record_ids(relabelled).iloc[0] != ids.iloc[0]


def test_selection_takes_the_most_doubtful_and_explains_an_empty_one():
    df = review_table(6).sample(frac=1, random_state=1)
    picked = utils.select_for_review(df, 2)
    assert picked["label_quality"].tolist() == sorted(df["label_quality"])[:2]
    assert utils.select_for_review(df, 10, only_flagged=True)["is_label_issue"].all()
    with pytest.raises(utils.AnnotationError, match="No example of the 6 was flagged"):
        utils.select_for_review(df.assign(is_label_issue=False), 3, only_flagged=True)
    with pytest.raises(utils.AnnotationError, match="label quality <= 0.001"):
        utils.select_for_review(df, 3, max_label_quality=0.001)
    with pytest.raises(utils.AnnotationError, match="positive whole number"):
        utils.select_for_review(df, 0)
    with pytest.raises(utils.AnnotationError, match="table of examples is empty"):
        utils.select_for_review(df.iloc[:0], 3)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.drop(columns="suggested_label"), r"lacks the column\(s\) \['suggested_label'\]"),
    (lambda d: d.assign(text_original=["", *d["text_original"][1:]]), r"empty quote \(text_original\) in row\(s\) \[0\]"),
    (lambda d: d.assign(text_original=[None, *d["text_original"][1:]]), r"empty quote"),
    (lambda d: d.assign(label_text=["Army", *d["label_text"][1:]]), r"label_text not one of"),
    (lambda d: d.assign(label_quality=[np.nan, *d["label_quality"][1:]]), "missing label_quality"),
    (lambda d: d.assign(embedding=[[1.0], *d["embedding"][1:]]), "different lengths"),
    (lambda d: d.iloc[:0], "table is empty"),
])
def test_records_with_missing_fields_are_a_clear_error(change, message):
    with pytest.raises(utils.AnnotationError, match=message):
        utils.review_records(change(review_table(4)))


def test_records_carry_suggestion_metadata_vector_and_context():
    df = review_table(2)
    records = utils.review_records(df)
    first, second = records
    suggestion = {s.question_name: s for s in first.suggestions}["stance"]
    assert (suggestion.value, suggestion.score) == (df["suggested_label"][0], round(df["suggested_score"][0], 4))
    assert first.metadata["given_label"] == df["label_text"][0] and first.metadata["flagged"] == "yes"
    assert len(first.vectors["embedding"]) == 4
    assert second.fields["context"] == "Before. **Quote number 1 about the army.** After."


def responses_frame(rows):
    return pd.DataFrame(rows, columns=["record_id", "annotator", "label", "given_label", "suggested_label"]).assign(
        quote="q", suggestion_score=0.5, label_quality=0.1)


def test_majority_vote_and_its_ties():
    neg, pos, other = utils.LABELS
    df = responses_frame([
        ("a", "x", pos, neg, other), ("a", "y", pos, neg, other), ("a", "z", neg, neg, other),  # majority
        ("b", "x", pos, neg, other), ("b", "y", neg, neg, other),  # tie with the given label: keep it
        ("c", "x", pos, neg, other), ("c", "y", other, neg, other),  # tie without it: the suggestion
    ])
    got = utils.corrected_labels(df).set_index("record_id")
    assert got["label"].to_dict() == {"a": pos, "b": neg, "c": other}
    assert got["changed"].to_dict() == {"a": True, "b": False, "c": True}
    assert got.loc["a", "answers"] == 3 and not got.loc["a", "unanimous"]


def test_agreement_table_counts_and_kappa():
    neg, pos, other = utils.LABELS
    rows = []
    for i, label in enumerate([neg, pos, other, pos]):
        # given label = label, suggestion = neg; x agrees with the given label, y with the suggestion
        rows += [(f"r{i}", "x", label, label, neg), (f"r{i}", "y", neg, label, neg)]
    table = utils.agreement_table(responses_frame(rows))
    assert table.loc["x vs y", "records"] == 4
    assert table.loc["x vs given label", "share agreeing"] == 1.0 and table.loc["x vs given label", "Cohen's kappa"] == 1.0
    assert table.loc["y vs suggestion", "share agreeing"] == 1.0
    assert table.loc["x vs y", "share agreeing"] == 0.25


def test_corrections_update_label_and_label_text():
    train = utils.prepare_texts(pd.DataFrame({
        "text_original": ["a", "b", "c"], "text_preceding": "", "text_following": "",
        "label_text": ["Other", "Other", "Military: Positive"]}))
    train["label"] = train["label_text"].map(utils.LABEL2ID)
    ids = utils.record_ids(train)
    corrections = pd.DataFrame({"record_id": [ids[0], "rec-unknown"], "label": ["Military: Negative", "Other"]})
    new, summary = utils.apply_corrections(train, corrections)
    assert new["label_text"].tolist() == ["Military: Negative", "Other", "Military: Positive"]
    assert new["label"].tolist() == [utils.LABEL2ID["Military: Negative"], utils.LABEL2ID["Other"], 1]
    assert summary["rows"].to_dict() == {"reviewed records": 2, "found in the training data": 1, "labels changed": 1}
    assert train["label_text"][0] == "Other"  # the input is not changed


def test_suggestion_scores_match_rows_by_text():
    train = review_table(3).drop(columns=["suggested_score"])
    probs = np.array([[0.1, 0.7, 0.2], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2]])
    examples = train.iloc[[2, 0]]
    scores = utils.suggestion_scores(examples, train, probs)
    expected = [probs[2, utils.LABEL2ID[examples["suggested_label"].iloc[0]]],
                probs[0, utils.LABEL2ID[examples["suggested_label"].iloc[1]]]]
    assert scores.tolist() == pytest.approx(expected)
    assert np.isnan(utils.suggestion_scores(examples.assign(text_original="new"), train, probs)).all()


# ---------------------------------------------------------------- against a real server


def test_connect_and_who_am_i(owner, argilla):
    table = utils.connection_table(owner)
    assert table.loc["server", ""] == argilla["url"]
    assert table.loc["role", ""] in {"owner", "admin", "annotator"}
    assert argilla["api_key"] not in table.to_string()


def test_wrong_key_is_a_clear_message(argilla):
    with pytest.raises(utils.AnnotationError, match="refused the API key"):
        utils.connect(utils.ArgillaCredentials(argilla["url"], "not-the-key"))


def test_a_url_that_is_not_argilla_is_explained(argilla):
    with pytest.raises(utils.AnnotationError, match="not like an Argilla server"):
        utils.connect(utils.ArgillaCredentials(argilla["url"] + "/sign-in", argilla["api_key"]))


def test_round_trip_records_suggestions_responses(owner, capsys):
    df = review_table(6)
    dataset, message = utils.get_or_create_dataset(owner, unique("round-trip"), utils.review_settings(4, client=owner))
    assert message.startswith("Created")
    sent = utils.log_new_records(dataset, utils.review_records(df))
    assert sent.loc["sent now", "records"] == 6

    # What the server holds: fields, metadata, suggestion with score, vector.
    by_id = {r.id: r for r in dataset.records(with_suggestions=True, with_vectors=True)}
    first = by_id[utils.record_ids(df)[0]]
    assert first.fields["quote"] == df["text_original"][0]
    assert first.metadata["label_quality"] == pytest.approx(df["label_quality"][0])
    suggestion = {s.question_name: s for s in first.suggestions}["stance"]
    assert suggestion.value == df["suggested_label"][0] and suggestion.score == pytest.approx(df["suggested_score"][0])
    assert first.vectors["embedding"] == pytest.approx(df["embedding"][0])

    # Nobody has answered: a clear message and an empty table with the columns, so the next cells run.
    capsys.readouterr()
    nothing = utils.submitted_responses(owner, dataset)
    assert nothing.empty and list(nothing.columns) == annotation_answers.RESPONSE_COLUMNS
    assert utils.NO_ANSWERS_YET in capsys.readouterr().out

    # A draft and a discarded answer from the owner must not come back; stand-ins submit.
    import argilla as rg

    me = owner.me
    draft, discarded = by_id[utils.record_ids(df)[1]], by_id[utils.record_ids(df)[2]]
    draft.responses.add(rg.Response("stance", "Other", user_id=me.id, status="draft"))
    discarded.responses.add(rg.Response("stance", "Other", user_id=me.id, status="discarded"))
    dataset.records.log([draft, discarded])
    added = utils.add_stand_in_responses(owner, dataset, n_annotators=2, seed=1)
    assert added["submitted now"].tolist() == [6, 6]
    again = utils.add_stand_in_responses(owner, dataset, n_annotators=2, seed=1)
    assert again["submitted now"].tolist() == [0, 0]  # answered records are left alone

    responses = utils.submitted_responses(owner, dataset)
    assert len(responses) == 12 and set(responses["annotator"]) == {"stand-in-annotator-1", "stand-in-annotator-2"}
    assert set(responses["record_id"]) == set(utils.record_ids(df))
    assert (responses["label"].isin(utils.LABELS)).all()
    assert responses["suggestion_score"].notna().all()

    as_dataset = utils.responses_to_dataset(responses)
    assert as_dataset.num_rows == 12 and "label" in as_dataset.column_names
    table = utils.agreement_table(responses)
    assert "stand-in-annotator-1 vs stand-in-annotator-2" in table.index


def test_only_submitted_records_are_fetched_by_the_status_filter(owner):
    import argilla as rg

    df = review_table(4)
    dataset, _ = utils.get_or_create_dataset(owner, unique("status-filter"), utils.review_settings(4))
    utils.log_new_records(dataset, utils.review_records(df))
    record = next(r for r in dataset.records() if r.id == utils.record_ids(df)[3])
    record.responses.add(rg.Response("stance", "Other", user_id=owner.me.id, status="submitted"))
    dataset.records.log([record])
    query = rg.Query(filter=rg.Filter(("response.status", "==", "submitted")))
    assert [r.id for r in dataset.records(query=query)] == [record.id]
    pending = rg.Query(filter=rg.Filter(("response.status", "==", "pending")))
    assert len(list(dataset.records(query=pending))) == 3
    responses = utils.submitted_responses(owner, dataset)
    assert responses[["annotator", "label"]].values.tolist() == [[owner.me.username, "Other"]]


def test_existing_dataset_is_reused_with_its_annotations_or_renamed(owner):
    import argilla as rg

    name, df = unique("exists"), review_table(3)
    dataset, _ = utils.get_or_create_dataset(owner, name, utils.review_settings(4))
    utils.log_new_records(dataset, utils.review_records(df))
    record = next(iter(dataset.records()))
    record.responses.add(rg.Response("stance", "Other", user_id=owner.me.id, status="submitted"))
    dataset.records.log([record])

    again, message = utils.get_or_create_dataset(owner, name, utils.review_settings(4), if_exists="reuse")
    assert message.startswith("Reusing") and again.id == dataset.id
    sent = utils.log_new_records(again, utils.review_records(review_table(5)))
    assert sent["records"].tolist() == [2, 3, 5]
    assert len(utils.submitted_responses(owner, again)) == 1  # the answer survived the rerun

    renamed, message = utils.get_or_create_dataset(owner, name, utils.review_settings(4), if_exists="new")
    assert renamed.name == f"{name}-2" and renamed.id != dataset.id
    with pytest.raises(utils.AnnotationError, match="exists already"):
        utils.get_or_create_dataset(owner, name, utils.review_settings(4), if_exists="error")
    with pytest.raises(utils.AnnotationError, match=r"made differently: vectors \{'embedding': 4\} instead"):
        utils.get_or_create_dataset(owner, name, utils.review_settings(8), if_exists="reuse")
    assert len(utils.submitted_responses(owner, dataset)) == 1  # nothing was deleted


def test_similarity_and_metadata_search_work_on_the_test_server(owner):
    import argilla as rg

    df = review_table(5)
    dataset, _ = utils.get_or_create_dataset(owner, unique("search"), utils.review_settings(4))
    utils.log_new_records(dataset, utils.review_records(df))
    ids = utils.record_ids(df)
    similar = list(dataset.records(query=rg.Query(similar=rg.Similar(name="embedding", value=df["embedding"][2]))))
    assert similar[0][0].id == ids[2]  # an exact match is the most similar
    low = rg.Query(filter=rg.Filter(("metadata.label_quality", "<=", 0.1)))  # rows 0 and 1: 0.01, 0.0825
    assert {r.id for r in dataset.records(query=low)} == set(ids[:2])
    flagged = rg.Query(filter=rg.Filter(("metadata.flagged", "==", "yes")))
    assert {r.id for r in dataset.records(query=flagged)} == set(ids[:2])


def test_server_rejections_become_clear_errors(owner):
    dataset, _ = utils.get_or_create_dataset(owner, unique("reject"), utils.review_settings(4))
    bad = utils.review_records(review_table(1), agent="not allowed (brackets)")
    with pytest.raises(utils.AnnotationError, match="refused the records"):
        utils.log_new_records(dataset, bad)


def test_zero_stand_ins_answer_nothing_and_say_so(owner, capsys):
    dataset, _ = utils.get_or_create_dataset(owner, unique("none"), utils.review_settings(4))
    utils.log_new_records(dataset, utils.review_records(review_table(2)))
    assert utils.add_stand_in_responses(owner, dataset, n_annotators=0) is None
    assert "nobody answers on your behalf" in capsys.readouterr().out
    assert sum(len(record.responses) for record in dataset.records(with_responses=True)) == 0


def test_the_pause_cell_counts_answers_per_annotator_and_status(owner, capsys):
    import argilla as rg

    df = review_table(4)
    dataset, _ = utils.get_or_create_dataset(owner, unique("progress"), utils.review_settings(4, client=owner))
    utils.log_new_records(dataset, utils.review_records(df))
    assert utils.annotation_progress(owner, dataset) is None
    shown = capsys.readouterr().out
    assert f"/dataset/{dataset.id}/annotation-mode" in shown and "No submitted answers yet (0 of 4 records)" in shown

    by_id = {r.id: r for r in dataset.records()}
    ids = utils.record_ids(df)
    for record_id, status in [(ids[0], "submitted"), (ids[1], "draft"), (ids[2], "discarded")]:
        by_id[record_id].responses.add(rg.Response("stance", "Other", user_id=owner.me.id, status=status))
    dataset.records.log([by_id[i] for i in ids[:3]])
    utils.add_stand_in_responses(owner, dataset, n_annotators=1, seed=3)
    table = utils.annotation_progress(owner, dataset)
    assert table.loc[owner.me.username].to_dict() == {"submitted": 1, "draft": 1, "discarded": 1}
    assert table.loc["stand-in-annotator-1"].to_dict() == {"submitted": 4, "draft": 0, "discarded": 0}
    assert "4 of 4 records have at least one submitted answer" in capsys.readouterr().out


def test_connect_or_fall_back_uses_the_server_when_it_answers(argilla, capsys):
    owner = utils.connect_or_fall_back(utils.ArgillaCredentials(argilla["url"], argilla["api_key"]), "argilla")
    assert owner is not None and owner.me.username
    assert capsys.readouterr().out == ""  # no fallback message
    assert utils.connect_or_fall_back(utils.ArgillaCredentials(argilla["url"], argilla["api_key"]), "notebook") is None

