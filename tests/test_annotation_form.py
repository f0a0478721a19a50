"""Annotating without a server: utils.annotation_form's dataset and ipywidgets form, and the fallback.

The form is driven headlessly, as a student's clicks would drive it: the tests set the widgets'
values and click their buttons from code, then read the same response table that a server gives.
One test repeats the clicks with Colab's ipywidgets 7.7.1 in .venv-colab (skipped without it).
"""

import json
import pathlib
import subprocess

import pandas as pd
import pytest

import utils
from test_annotation import review_table
from utils import annotation, annotation_answers, annotation_form

ROOT = pathlib.Path(__file__).resolve().parent.parent
COLAB_PYTHON = ROOT / ".venv-colab" / "bin" / "python"
NEG, POS, OTHER = utils.LABELS


@pytest.fixture
def no_server(monkeypatch, tmp_path):
    """No Argilla server configured, and a results folder of the test's own."""
    monkeypatch.delenv("ARGILLA_API_URL", raising=False)
    monkeypatch.delenv("ARGILLA_API_KEY", raising=False)
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def notebook_dataset(n: int = 4, name: str = "review") -> tuple[utils.NotebookDataset, pd.DataFrame]:
    """A NotebookDataset made the way notebook 6 makes it without a server, with `n` records."""
    table = review_table(n)
    dataset, _ = utils.get_or_create_dataset(None, name, utils.review_settings(4, client=None))
    utils.log_new_records(dataset, utils.review_records(table))
    return dataset, table


# ---------------------------------------------------------------- falling back


def test_annotate_in_notebook_needs_no_server(no_server, capsys):
    assert utils.connect_or_fall_back(utils.ArgillaCredentials(None, None), "notebook") is None
    assert "ANNOTATE_IN = 'notebook'" in capsys.readouterr().out
    assert utils.connection_table(None).loc["server", ""] == "none"


@pytest.mark.parametrize("credentials, reason", [
    (utils.ArgillaCredentials(None, None), "No Argilla server is configured"),
    (utils.ArgillaCredentials("http://127.0.0.1:9", "any-key"), "No Argilla server answers at http://127.0.0.1:9"),
    (utils.ArgillaCredentials("localhost:6900", "any-key"), "must start with http"),
])
def test_no_reachable_server_falls_back_to_the_notebook_and_says_why(no_server, capsys, credentials, reason):
    assert utils.connect_or_fall_back(credentials, "argilla", timeout=5) is None
    shown = capsys.readouterr().out
    assert shown.startswith("You annotate in a form in this notebook instead")
    assert reason in shown and "ANNOTATE_IN = 'notebook'" in shown


def test_a_wrong_annotate_in_value_is_a_clear_error():
    with pytest.raises(utils.AnnotationError, match=r"ANNOTATE_IN must be 'argilla' .* or 'notebook' .* not 'web'"):
        utils.connect_or_fall_back(utils.ArgillaCredentials(None, None), "web")


def test_the_dataset_design_is_built_without_a_server(no_server):
    settings = utils.review_settings(384, client=None)  # would try to connect without the stand-in client
    assert [f.name for f in settings.fields] == ["quote", "context"]
    assert settings.questions["stance"].labels == utils.LABELS
    assert [(v.name, v.dimensions) for v in settings.vectors] == [("embedding", 384)]
    assert "Military: Positive" in settings.guidelines


# ---------------------------------------------------------------- the dataset in files


def test_records_and_answers_are_files_that_a_reopened_dataset_reads_back(no_server):
    dataset, table = notebook_dataset(4)
    ids = utils.record_ids(table).tolist()
    assert dataset.records["record_id"].tolist() == ids
    assert dataset.records.loc[1, "context"] == "Before. **Quote number 1 about the army.** After."
    dataset.add_answers([{"record_id": ids[0], "annotator": "ana", "status": "submitted", "label": POS},
                         {"record_id": ids[1], "annotator": "ana", "status": "discarded", "label": None}])
    dataset.add_answers([{"record_id": ids[0], "annotator": "ana", "status": "submitted", "label": OTHER}])  # changed

    again, message = utils.get_or_create_dataset(None, "review", utils.review_settings(4))
    assert message.startswith("Reusing the dataset 'review'") and "2 answer(s) to 4 record(s)" in message
    assert again.answer_of(ids[0], "ana") == {"status": "submitted", "label": OTHER}
    assert again.answer_of(ids[1], "ana") == {"status": "discarded", "label": ""}
    sent = utils.log_new_records(again, utils.review_records(review_table(6)))
    assert sent["records"].tolist() == [2, 4, 6]  # sent now, already there, in the dataset
    assert len(again.answers) == 2  # sending records again keeps their answers

    exported = again.to_disk(no_server / "export")
    assert sorted(p.name for p in exported.iterdir()) == ["answers.csv", "records.csv", "settings.json"]
    assert len(pd.read_csv(exported / "answers.csv")) == 2


def test_two_kernels_on_one_dataset_keep_each_others_answers(no_server):
    """A second notebook tab (another kernel) on the same folder: neither overwrites the other's answers."""
    first, table = notebook_dataset(2)
    second = utils.NotebookDataset(first.folder, utils.LABELS)
    ids = utils.record_ids(table)
    first.add_answers([{"record_id": ids[0], "annotator": "ana", "status": "submitted", "label": POS}])
    second.add_answers([{"record_id": ids[1], "annotator": "ben", "status": "submitted", "label": NEG}])
    reread = utils.NotebookDataset(first.folder, utils.LABELS)
    assert sorted(zip(reread.answers["annotator"], reread.answers["label"])) == [("ana", POS), ("ben", NEG)]


def test_if_exists_and_bad_names_for_a_dataset_in_the_notebook(no_server):
    notebook_dataset(2, name="taken")
    renamed, message = utils.get_or_create_dataset(None, "taken", utils.review_settings(4), if_exists="new")
    assert renamed.name == "taken-2" and message.startswith("Created")
    with pytest.raises(utils.AnnotationError, match="exists already"):
        utils.get_or_create_dataset(None, "taken", utils.review_settings(4), if_exists="error")
    with pytest.raises(utils.AnnotationError, match=r"made with the labels .* Set IF_EXISTS = 'new'"):
        utils.get_or_create_dataset(None, "taken", utils.review_settings(4, labels=["yes", "no"]))
    with pytest.raises(utils.AnnotationError, match="cannot name a folder"):
        utils.get_or_create_dataset(None, "../elsewhere", utils.review_settings(4))


def test_answers_that_cannot_be_right_are_refused_before_anything_is_written(no_server):
    dataset, table = notebook_dataset(2)
    record_id = utils.record_ids(table)[0]
    good = {"record_id": record_id, "annotator": "ana", "status": "submitted", "label": POS}
    for bad, message in [({"label": "Army"}, "not one of the labels"), ({"annotator": " "}, "annotator's name"),
                         ({"record_id": "rec-nope"}, "No record 'rec-nope'"), ({"status": "draft"}, "not 'draft'")]:
        with pytest.raises(utils.AnnotationError, match=message):
            dataset.add_answers([good, {**good, **bad}])
    assert dataset.answers.empty and not (dataset.folder / "answers.csv").exists()


def test_an_answers_file_changed_by_hand_is_a_clear_error(no_server):
    dataset, _ = notebook_dataset(2)
    (dataset.folder / "answers.csv").write_text("who,what\nana,Other\n")
    with pytest.raises(utils.AnnotationError, match=r"lacks the column\(s\) \['record_id'.*IF_EXISTS = 'new'"):
        utils.get_or_create_dataset(None, "review", utils.review_settings(4))
    assert (dataset.folder / "answers.csv").read_text() == "who,what\nana,Other\n"  # left as it was


# ---------------------------------------------------------------- the form


def test_clicking_the_form_fills_the_same_table_a_server_gives(no_server):
    dataset, table = notebook_dataset(4)
    form = utils.AnnotationForm(dataset, annotator="ana")
    assert "Quote number 0 about the army." in form.quote.value
    assert f"label in the data set: {table['label_text'][0]}" in form.suggestion.value
    assert form.buttons[table["suggested_label"][0]].button_style == "info"  # the suggestion, pre-marked
    form.buttons[POS].click()                     # record 1 -> Positive, then record 2 shows
    assert "Quote number 1" in form.quote.value and "Saved: record 1 &rarr; Military: Positive" in form.message.value
    assert "<b>Quote number 1 about the army.</b>" in form.context.value  # the quote in bold in its context
    form.buttons[OTHER].click()                   # record 2 -> Other
    form.discard_button.click()                   # record 3 discarded
    form.previous_button.click()                  # back to record 3: it shows the discard
    assert form.discard_button.button_style == "warning"
    form.next_button.click()
    form.buttons[NEG].click()                     # record 4 -> Negative; every record answered
    assert "answered every record" in form.message.value
    form.show(0)
    assert form.buttons[POS].button_style == "success"  # your answer, marked

    form.name.value = "ben"                       # a second person takes over, from their first open record
    assert "Quote number 0" in form.quote.value and "ben: 0 submitted" in form.position.value
    form.buttons[POS].click()

    responses = utils.submitted_responses(None, dataset)
    assert list(responses.columns) == annotation_answers.RESPONSE_COLUMNS
    ids = utils.record_ids(table)
    got = {(r.annotator, r.record_id): r.label for r in responses.itertuples()}
    assert got == {("ana", ids[0]): POS, ("ana", ids[1]): OTHER, ("ana", ids[3]): NEG, ("ben", ids[0]): POS}
    first = responses[responses["record_id"] == ids[0]].iloc[0]
    assert (first["quote"], first["given_label"], first["suggested_label"]) == (
        table["text_original"][0], table["label_text"][0], table["suggested_label"][0])
    assert first["suggestion_score"] == pytest.approx(table["suggested_score"][0], abs=1e-4)
    # What the notebook does next works on these answers as on a server's.
    assert utils.agreement_table(responses).loc["ana vs ben", "share agreeing"] == 1.0
    corrections = utils.corrected_labels(responses)
    assert corrections.set_index("record_id").loc[ids[0], "label"] == POS and len(corrections) == 3
    # Every click is on disk: a new kernel reads the same answers.
    assert len(utils.NotebookDataset(dataset.folder, utils.LABELS).answers) == 5


@pytest.mark.parametrize("name, message", [("  ", "Type your name"), ("stand-in-annotator-1", "stand-in")])
def test_the_form_refuses_an_empty_or_a_stand_in_name(no_server, name, message):
    dataset, _ = notebook_dataset(2)
    form = utils.AnnotationForm(dataset)
    form.name.value = name
    form.buttons[OTHER].click()
    assert message in form.message.value and dataset.answers.empty


def test_a_form_without_records_says_what_to_run(no_server):
    dataset, _ = utils.get_or_create_dataset(None, "empty", utils.review_settings(4))
    form = utils.AnnotationForm(dataset)
    assert "No records yet" in form.position.value and all(b.disabled for b in form.buttons.values())
    form.submit(OTHER)  # from code, past the disabled button
    assert "no record to answer" in form.message.value and dataset.answers.empty


def test_a_click_that_cannot_be_saved_says_so_in_the_form(no_server):
    dataset, _ = notebook_dataset(2)
    form = utils.AnnotationForm(dataset)
    (dataset.folder / "answers.csv").write_text("who,what\nana,Other\n")  # changed by hand meanwhile
    form.buttons[OTHER].click()
    assert form.message.value.startswith("<span style='color:#b00'>Not saved: ")
    assert "lacks the column" in form.message.value
    assert (dataset.folder / "answers.csv").read_text() == "who,what\nana,Other\n"


def test_the_form_works_with_colab_ipywidgets_7(tmp_path):
    """The same clicks in .venv-colab, which pins Colab's ipywidgets 7.7.1."""
    if not COLAB_PYTHON.exists():
        pytest.skip("no .venv-colab: make setup-colab-env")
    script = f"""
import json, os, sys
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / "tests")!r})
os.environ["COURSE_RESULTS_DIR"] = {str(tmp_path)!r}
import ipywidgets, utils
from test_annotation_form import notebook_dataset
dataset, table = notebook_dataset(3)
form = utils.AnnotationForm(dataset, annotator="colab")
form.buttons["Other"].click(); form.discard_button.click(); form.buttons["Military: Positive"].click()
responses = utils.submitted_responses(None, dataset)
print(json.dumps({{"ipywidgets": ipywidgets.__version__, "labels": responses["label"].tolist(),
                  "discarded": int((dataset.answers["status"] == "discarded").sum())}}))
"""
    result = subprocess.run([str(COLAB_PYTHON), "-c", script], capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COURSE_MODE": "ci"})
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts == {"ipywidgets": "7.7.1", "labels": ["Other", "Military: Positive"], "discarded": 1}


# ---------------------------------------------------------------- no answers yet, and stand-ins


def test_with_no_answers_yet_every_step_says_so_instead_of_failing(no_server, capsys):
    dataset, _ = notebook_dataset(3)
    assert utils.annotation_progress(None, dataset) is None
    assert "No submitted answers yet (0 of 3 records)" in capsys.readouterr().out
    responses = utils.submitted_responses(None, dataset)
    assert responses.empty and list(responses.columns) == annotation_answers.RESPONSE_COLUMNS
    assert capsys.readouterr().out.strip() == utils.NO_ANSWERS_YET
    assert utils.agreement_table(responses).empty and utils.NO_ANSWERS_YET in capsys.readouterr().out
    assert utils.responses_to_dataset(responses).num_rows == 0
    corrections = utils.corrected_labels(responses)
    train = utils.prepare_texts(pd.DataFrame({"text_original": ["a"], "text_preceding": "", "text_following": "",
                                              "label_text": [OTHER]})).assign(label=utils.LABEL2ID[OTHER])
    unchanged, summary = utils.apply_corrections(train, corrections)
    assert summary["rows"].tolist() == [0, 0, 0] and unchanged["label_text"].tolist() == [OTHER]


def test_stand_ins_answer_a_notebook_dataset_once_and_zero_stand_ins_answer_nothing(no_server, capsys):
    dataset, _ = notebook_dataset(3)
    assert utils.add_stand_in_responses(None, dataset, 0) is None
    assert "nobody answers on your behalf" in capsys.readouterr().out and dataset.answers.empty
    added = utils.add_stand_in_responses(None, dataset, 2, seed=1)
    assert added["submitted now"].to_dict() == {"stand-in-annotator-1": 3, "stand-in-annotator-2": 3}
    assert utils.add_stand_in_responses(None, dataset, 2, seed=1)["submitted now"].tolist() == [0, 0]
    progress = utils.annotation_progress(None, dataset)
    assert progress.loc["stand-in-annotator-1"].to_dict() == {"submitted": 3, "discarded": 0}
    assert "3 of 3 records have at least one submitted answer" in capsys.readouterr().out
    assert len(utils.submitted_responses(None, dataset)) == 6


def test_record_rows_read_what_review_records_wrote():
    table = review_table(2)
    rows = annotation_form.record_rows(utils.review_records(table))
    assert list(rows.columns) == annotation_form.RECORD_COLUMNS
    assert rows["suggested_label"].tolist() == table["suggested_label"].tolist()
    assert rows["flagged"].tolist() == ["yes", "no"]
    assert rows.loc[0, "context"] == utils.review_records(table)[0].fields["context"]
