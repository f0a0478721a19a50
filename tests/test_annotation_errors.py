"""utils.annotation's error branches and edge cases: each bad input gets an AnnotationError that
names the problem and the fix.

The tests that need a server use a real one, found or started as in tests/test_annotation.py
(the shared `argilla_launcher` fixture); without one they are skipped with the reason, and under
CI=true that skip is a failure (tests/conftest.py).
"""

import secrets
import socket
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest

import utils
from utils import annotation

NEG, POS, OTHER = utils.LABELS


@pytest.fixture(scope="module")
def annotator(argilla, owner):
    """A client for a new user with the role 'annotator' who belongs to no workspace."""
    import argilla as rg

    user = rg.User(username=f"annotator-{uuid.uuid4().hex[:8]}", role="annotator",
                   password=secrets.token_urlsafe(16), client=owner).create()
    # The SDK does not show another user's key; the server's users endpoint does, to an owner.
    key = owner.api.http_client.get(f"/api/v1/users/{user.id}").json()["api_key"]
    return utils.connect(utils.ArgillaCredentials(argilla["url"], key, "test"))


def one_record_table(embedding: list[float]) -> pd.DataFrame:
    return pd.DataFrame({
        "text_original": ["We will double the number of reservists."], "text_preceding": [""],
        "text_following": [""], "label_text": [POS], "suggested_label": [POS], "suggested_score": [0.9],
        "label_quality": [0.2], "is_label_issue": [True], "split": ["train"], "embedding": [embedding],
    })


# ---------------------------------------------------------------- without a server


@pytest.mark.parametrize("if_exists", ["replace", "overwrite", "", None])
def test_an_unknown_if_exists_is_named_before_anything_is_sent(if_exists):
    # No client at all: the check comes before any call to a server.
    with pytest.raises(utils.AnnotationError, match=r"IF_EXISTS must be 'reuse', 'new' or 'error', not "):
        utils.get_or_create_dataset(None, "any-name", utils.review_settings(4), if_exists=if_exists)


@pytest.mark.parametrize("size", [0, -3, 2.5, "384", None])
def test_an_embedding_size_that_is_not_a_positive_whole_number(size):
    with pytest.raises(utils.AnnotationError, match="embedding size must be a positive whole number, got"):
        utils.review_settings(size)


def test_review_settings_take_a_numpy_embedding_size():
    # The size usually comes from an array's shape: a numpy integer.
    vectors = utils.review_settings(np.int64(384)).vectors
    assert [(v.name, v.dimensions) for v in vectors] == [("embedding", 384)]


def corrections_for(train: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"record_id": utils.record_ids(train)[:len(labels)], "label": labels})


@pytest.fixture
def train():
    frame = pd.DataFrame({"text_original": ["a", "b"], "text_preceding": "", "text_following": "",
                          "label_text": [OTHER, POS]})
    return frame.assign(label=frame["label_text"].map(utils.LABEL2ID))


def test_a_corrected_label_the_task_lacks_is_named(train):
    # Regression: pandas' IntCastingNaNError ("Cannot convert non-finite values") named neither the label nor a fix.
    with pytest.raises(utils.AnnotationError) as caught:
        utils.apply_corrections(train, corrections_for(train, [NEG, "Military: Neutral"]))
    message = str(caught.value)
    assert "['Military: Neutral']" in message and str(utils.LABELS) in message and "label question" in message
    assert train["label_text"].tolist() == [OTHER, POS]  # nothing changed


def test_corrections_without_their_columns_are_named(train):
    with pytest.raises(utils.AnnotationError, match=r"lack the column\(s\) \['label'\]"):
        utils.apply_corrections(train, pd.DataFrame({"record_id": utils.record_ids(train)}))


def test_agreement_with_one_annotator_compares_with_the_given_label_and_the_suggestion():
    responses = pd.DataFrame({
        "record_id": ["r0", "r1", "r2"], "annotator": "ann", "label": [POS, NEG, OTHER],
        "given_label": [NEG, NEG, OTHER], "suggested_label": OTHER,
    }).assign(quote="q", suggestion_score=0.5, label_quality=0.1)
    table = utils.agreement_table(responses)
    assert list(table.index) == ["ann vs given label", "ann vs suggestion", "majority vote vs given label",
                                 "majority vote vs suggestion"]  # no pair of annotators to compare
    assert (table["records"] == 3).all()
    # Given labels NEG NEG OTHER against POS NEG OTHER: agreement 2/3, chance 1/3 -> kappa 0.5.
    assert table.loc["ann vs given label", "share agreeing"] == round(2 / 3, 3)
    assert table.loc["ann vs given label", "Cohen's kappa"] == 0.5
    # The suggestion is always OTHER: agreement 1/3, chance 1/3 -> kappa 0.
    assert table.loc["ann vs suggestion", "Cohen's kappa"] == 0.0
    assert table.loc["majority vote vs given label"].tolist() == table.loc["ann vs given label"].tolist()


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers: a stalled server."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_server_that_never_answers_times_out_with_a_clear_message(silent_server, monkeypatch):
    for name in ("no_proxy", "NO_PROXY"):  # never send 127.0.0.1 through a proxy
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    began = time.monotonic()
    with pytest.raises(utils.AnnotationError) as caught:
        utils.connect(utils.ArgillaCredentials(silent_server, "any-key"), timeout=1, retries=0)
    assert time.monotonic() - began < 20
    message = str(caught.value)
    assert message.startswith(f"No Argilla server answers at {silent_server} (") and "Timeout" in message
    assert "Space" in message and "docker ps" in message  # the two set-ups and how to check each


# ---------------------------------------------------------------- against a real server


def test_a_user_in_no_workspace_is_told_who_can_add_them(annotator):
    with pytest.raises(utils.AnnotationError, match="belongs to no workspace.*An owner must add you to one"):
        annotation.default_workspace(annotator)
    with pytest.raises(utils.AnnotationError, match="belongs to no workspace"):
        utils.get_or_create_dataset(annotator, f"nowhere-{uuid.uuid4().hex[:8]}", utils.review_settings(4))


def test_a_key_without_rights_cannot_make_stand_in_annotators(owner, annotator):
    dataset, _ = utils.get_or_create_dataset(owner, f"rights-{uuid.uuid4().hex[:8]}", utils.review_settings(4))
    with pytest.raises(utils.AnnotationError, match="role 'annotator'.*STAND_IN_ANNOTATORS = 0"):
        utils.add_stand_in_responses(annotator, dataset, n_annotators=2)


def test_embeddings_of_the_wrong_size_are_named_before_sending(owner):
    dataset, _ = utils.get_or_create_dataset(owner, f"dims-{uuid.uuid4().hex[:8]}", utils.review_settings(4))
    records = utils.review_records(one_record_table([0.1, 0.2, 0.3]))
    with pytest.raises(utils.AnnotationError) as caught:
        utils.log_new_records(dataset, records)
    message = str(caught.value)
    assert "'embedding' vectors have 3 numbers" in message and "made for 4" in message
    assert "EMBEDDING_MODEL" in message and "IF_EXISTS = 'new'" in message
    assert list(dataset.records()) == []  # nothing was sent
    sent = utils.log_new_records(dataset, utils.review_records(one_record_table([0.1, 0.2, 0.3, 0.4])))
    assert sent.loc["sent now", "records"] == 1
