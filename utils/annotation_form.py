"""Annotating inside the notebook: notebook 6 without an Argilla server.

No Hugging Face account, or a network that blocks the server: the review still works.
`NotebookDataset` keeps the records and everyone's answers as CSV files in one folder, and
`AnnotationForm` shows one record at a time (the quote, its context, the model's suggestion) with
one button per label. `utils.submitted_responses` reads the answers back as the same table a
server gives, so agreement, majority vote and the merge into the training data work the same.

Every click is written to disk at once: rerunning a cell or restarting the kernel loses nothing.
ipywidgets is imported inside AnnotationForm, so `import utils` stays fast; the form works with
ipywidgets 7 (Colab ships 7.7.1) and 8 (local installs).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
import pathlib
import re
import shutil

import pandas as pd

from .annotation import QUESTION, STAND_IN_PREFIX, AnnotationError
from .annotation_answers import RESPONSE_COLUMNS

RECORD_COLUMNS = ["record_id", "quote", "context", "given_label", "suggested_label", "suggestion_score",
                  "label_quality", "flagged"]
ANSWER_COLUMNS = ["record_id", "annotator", "status", "label", "time"]
STATUSES = ("submitted", "discarded")  # no drafts: a click here is a decision
SETTINGS_FILE, RECORDS_FILE, ANSWERS_FILE = "settings.json", "records.csv", "answers.csv"
_NUMERIC = ("suggestion_score", "label_quality")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a dataset name becomes a folder name


def record_rows(records: list) -> pd.DataFrame:
    """The review records (argilla.Record objects from utils.review_records) as a table with RECORD_COLUMNS."""
    rows = []
    for record in records:
        suggestion = {s.question_name: s for s in record.suggestions}.get(QUESTION)
        rows.append({
            "record_id": str(record.id), "quote": record.fields["quote"], "context": record.fields.get("context") or "",
            "given_label": record.metadata.get("given_label"),
            "suggested_label": suggestion.value if suggestion else None,
            "suggestion_score": suggestion.score if suggestion else None,
            "label_quality": record.metadata.get("label_quality"), "flagged": record.metadata.get("flagged", ""),
        })
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def _read_table(path: pathlib.Path, columns: list[str]) -> pd.DataFrame:
    """A CSV file this module wrote (empty table when absent); AnnotationError when its columns are wrong."""
    if not path.exists():
        return pd.DataFrame(columns=columns)
    # Everything as text, and empty cells as "" (not NaN): ids and labels must stay exactly as written.
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise AnnotationError(f"{path} lacks the column(s) {missing}, so it was changed outside the notebook. Restore "
                              "it from your export (section 8), or set IF_EXISTS = 'new' to start a new dataset; "
                              "this file is left as it is.")
    for column in _NUMERIC:
        if column in table.columns:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table[columns]


def _write_table(table: pd.DataFrame, path: pathlib.Path) -> None:
    """Write through a temporary file and rename: an interrupted write never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    table.to_csv(tmp, index=False)
    os.replace(tmp, path)


class NotebookDataset:
    """The review dataset without a server: its records and answers as CSV files in one folder.

    It does what the notebook needs of an Argilla dataset: a name, records added once (a record sent
    again keeps its answers), one answer per record and annotator (submitted or discarded; a new
    answer replaces the old one), counts, and `to_disk` for the export. Make one with `open`.
    """

    def __init__(self, folder: pathlib.Path, labels: list[str], guidelines: str = "") -> None:
        self.folder = pathlib.Path(folder)
        self.name = self.folder.name
        self.labels = list(labels)
        self.guidelines = guidelines
        self.records = _read_table(self.folder / RECORDS_FILE, RECORD_COLUMNS)
        self.answers = _read_table(self.folder / ANSWERS_FILE, ANSWER_COLUMNS)

    def __repr__(self) -> str:
        return (f"NotebookDataset({self.name!r}: {len(self.records)} records, {len(self.answers)} answers "
                f"in {self.folder})")

    @classmethod
    def open(cls, parent: pathlib.Path, name: str, labels: list[str], guidelines: str = "",
             if_exists: str = "reuse") -> tuple[NotebookDataset, str]:
        """The dataset `name` under the folder `parent`, and a sentence saying what happened.

        A dataset of that name exists already: "reuse" keeps it and its answers (if it has the same
        labels), "new" makes `name-2`, `name-3`, ... and "error" stops. Nothing is ever deleted.
        """
        if if_exists not in {"reuse", "new", "error"}:
            raise AnnotationError(f"IF_EXISTS must be 'reuse', 'new' or 'error', not {if_exists!r}.")
        if not _SAFE_NAME.match(name or ""):
            raise AnnotationError(f"DATASET_NAME={name!r} cannot name a folder: use letters, digits and - _ . only, "
                                  "starting with a letter or digit, e.g. 'manifesto-military-label-review'.")
        parent = pathlib.Path(parent)
        if (parent / name / SETTINGS_FILE).exists():
            if if_exists == "error":
                raise AnnotationError(f"A dataset named {name!r} exists already in {parent}. Set IF_EXISTS = 'reuse' "
                                      "to continue with it and its answers, 'new' to make one with a new name, or "
                                      "choose another DATASET_NAME.")
            if if_exists == "reuse":
                saved = json.loads((parent / name / SETTINGS_FILE).read_text(encoding="utf-8"))
                if saved.get("labels") != list(labels):
                    raise AnnotationError(
                        f"The dataset {name!r} in {parent} was made with the labels {saved.get('labels')}, not "
                        f"{list(labels)}. Its answers stay untouched. Set IF_EXISTS = 'new' to make a new dataset, "
                        "or choose another DATASET_NAME.")
                dataset = cls(parent / name, labels, guidelines)
                return dataset, (f"Reusing the dataset {name!r} kept in this notebook, with its {len(dataset.answers)} "
                                 f"answer(s) to {len(dataset.records)} record(s): {dataset.folder}")
            base, number = name, 2
            while (parent / name / SETTINGS_FILE).exists():
                name, number = f"{base}-{number}", number + 1
        folder = parent / name
        folder.mkdir(parents=True, exist_ok=True)
        settings = {"name": name, "question": QUESTION, "labels": list(labels), "guidelines": guidelines}
        (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=1, ensure_ascii=False), encoding="utf-8")
        return cls(folder, labels, guidelines), (f"Created the dataset {name!r} in this notebook (no server): its "
                                                 f"records and answers are saved as CSV files in {folder}")

    def add_records(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Add the records (RECORD_COLUMNS, see record_rows) the dataset does not hold yet; those it
        holds stay as they are, with their answers. Returns what was sent and what was kept."""
        missing = [c for c in RECORD_COLUMNS if c not in rows.columns]
        if missing:
            raise AnnotationError(f"The records lack the column(s) {missing}: make them with utils.review_records.")
        unknown = sorted(set(rows["given_label"]).union(rows["suggested_label"].dropna()) - set(self.labels))
        if unknown:
            raise AnnotationError(f"The records use label(s) {unknown} that the dataset does not have ({self.labels}).")
        self.records = _read_table(self.folder / RECORDS_FILE, RECORD_COLUMNS)  # what another kernel added stays
        new = rows[~rows["record_id"].astype(str).isin(set(self.records["record_id"]))]
        if len(new):
            parts = [frame for frame in (self.records, new[RECORD_COLUMNS].astype({"record_id": str})) if len(frame)]
            self.records = pd.concat(parts, ignore_index=True)
            _write_table(self.records, self.folder / RECORDS_FILE)
        return pd.DataFrame({"records": {"sent now": len(new), "already there (kept as they are)": len(rows) - len(new),
                                         "in the dataset": len(self.records)}})

    def add_answers(self, answers: list[dict]) -> None:
        """Save answers, each a dict with record_id, annotator, status and label (None when discarded).

        An annotator's new answer to a record replaces their old one, as in Argilla. Everything is
        checked before anything is written.
        """
        known = set(self.records["record_id"])
        rows = []
        for answer in answers:
            record_id, annotator = str(answer["record_id"]), str(answer.get("annotator") or "").strip()
            status, label = answer["status"], answer.get("label")
            if record_id not in known:
                raise AnnotationError(f"No record {record_id!r} in the dataset {self.name!r}.")
            if not annotator:
                raise AnnotationError("An answer needs the annotator's name: type it in the form's name box.")
            if status not in STATUSES:
                raise AnnotationError(f"An answer is {' or '.join(STATUSES)}, not {status!r}.")
            if status == "submitted" and label not in self.labels:
                raise AnnotationError(f"{label!r} is not one of the labels {self.labels}.")
            rows.append({"record_id": record_id, "annotator": annotator, "status": status,
                         "label": label if status == "submitted" else "",
                         "time": dt.datetime.now().isoformat(timespec="seconds")})
        if not rows:
            return
        new = pd.DataFrame(rows, columns=ANSWER_COLUMNS).drop_duplicates(["record_id", "annotator"], keep="last")
        self.answers = _read_table(self.folder / ANSWERS_FILE, ANSWER_COLUMNS)  # what another kernel saved stays
        replaced = self.answers.set_index(["record_id", "annotator"]).index.isin(
            new.set_index(["record_id", "annotator"]).index)
        parts = [frame for frame in (self.answers[~replaced], new) if len(frame)]
        self.answers = pd.concat(parts, ignore_index=True)
        _write_table(self.answers, self.folder / ANSWERS_FILE)

    def answer_of(self, record_id: str, annotator: str) -> dict | None:
        """The annotator's answer to the record (status and label), or None."""
        mine = self.answers[(self.answers["record_id"] == record_id) & (self.answers["annotator"] == annotator)]
        return None if mine.empty else mine.iloc[-1][["status", "label"]].to_dict()

    def submitted_responses(self) -> pd.DataFrame:
        """Every submitted answer with its record: the columns of utils.submitted_responses."""
        submitted = self.answers.loc[self.answers["status"] == "submitted", ["record_id", "annotator", "label"]]
        merged = submitted.merge(self.records, on="record_id", how="inner")
        return merged[RESPONSE_COLUMNS].reset_index(drop=True)

    def to_disk(self, path: str | pathlib.Path) -> pathlib.Path:
        """Copy the dataset's files (settings, records, answers) into the folder `path`."""
        target = pathlib.Path(path)
        target.mkdir(parents=True, exist_ok=True)
        for name in (SETTINGS_FILE, RECORDS_FILE, ANSWERS_FILE):
            if (self.folder / name).exists():
                shutil.copy2(self.folder / name, target / name)
        return target


# ---------------------------------------------------------------- the form


def _html_text(text: object) -> str:
    """Text shown as HTML: escaped, with **bold** (as in the context field) in bold, and line breaks kept."""
    missing = text is None or (isinstance(text, float) and math.isnan(text))
    escaped = html.escape("" if missing else str(text))
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped).replace("\n", "<br>")


class AnnotationForm:
    """One record at a time: the quote, its context and the model's suggestion, and a button per label.

    A label button submits that label for the record shown and moves to the next record this
    annotator has not answered; Discard is for a record you cannot judge; Previous and Next move
    without answering. Each answer is written to the dataset's files at once. The name box says who
    answers: two people can take turns on one notebook under different names. The widgets are
    attributes (`buttons`, `discard_button`, `name`, ...), so code can drive the form too.
    """

    def __init__(self, dataset: NotebookDataset, annotator: str = "you") -> None:
        import ipywidgets as widgets  # here, not at the top: `import utils` stays fast

        self.dataset = dataset
        self.index = 0
        self.name = widgets.Text(value=annotator, description="Your name:", style={"description_width": "initial"})
        self.position = widgets.HTML()
        self.guidelines = widgets.HTML(f"<details><summary><b>Guidelines</b> (click to open)</summary>"
                                       f"<div>{_html_text(dataset.guidelines)}</div></details>")
        self.quote = widgets.HTML()
        self.context = widgets.HTML()
        self.suggestion = widgets.HTML()
        self.buttons = {label: widgets.Button(description=label, layout=widgets.Layout(width="auto"))
                        for label in dataset.labels}
        self.discard_button = widgets.Button(description="Discard", tooltip="you cannot judge this record")
        self.previous_button = widgets.Button(description="< Previous")
        self.next_button = widgets.Button(description="Next >")
        self.message = widgets.HTML()
        for label, button in self.buttons.items():
            button.on_click(lambda _button, label=label: self.submit(label))
        self.discard_button.on_click(lambda _button: self.discard())
        self.previous_button.on_click(lambda _button: self.show(self.index - 1))
        self.next_button.on_click(lambda _button: self.show(self.index + 1))
        # A new name is a new annotator: start at their first open record.
        self.name.observe(lambda _change: self.show(self._next_open(0)), names="value")
        self.widget = widgets.VBox([
            self.name, self.guidelines, self.position, self.quote, self.context, self.suggestion,
            widgets.HBox(list(self.buttons.values())),
            widgets.HBox([self.previous_button, self.discard_button, self.next_button]), self.message,
        ])
        self.show(self._next_open(0))

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    @property
    def annotator(self) -> str:
        return self.name.value.strip()

    def _next_open(self, start: int) -> int:
        """The first record from `start` on (wrapping round) that the annotator has not answered; else `start`."""
        n = len(self.dataset.records)
        for step in range(n):
            index = (start + step) % n
            if self.dataset.answer_of(self.dataset.records["record_id"].iloc[index], self.annotator) is None:
                return index
        return start % n if n else 0

    def _name_problem(self) -> str | None:
        if not self.annotator:
            return "Type your name in the box first: every answer says who gave it."
        if self.annotator.startswith(STAND_IN_PREFIX):
            return f"Names starting with {STAND_IN_PREFIX!r} belong to the stand-in annotators: choose another."
        return None

    def show(self, index: int) -> None:
        """Show record number `index` (counting from 0, wrapping round) with this annotator's answer."""
        records = self.dataset.records
        for button in [*self.buttons.values(), self.discard_button, self.previous_button, self.next_button]:
            button.disabled = records.empty
        if records.empty:
            self.position.value = "<b>No records yet</b>: run the cells of section 4 first, then this cell again."
            self.quote.value = self.context.value = self.suggestion.value = ""
            return
        self.index = index % len(records)
        record = records.iloc[self.index]
        mine = self.answers_by_status()
        answer = self.dataset.answer_of(record["record_id"], self.annotator)
        self.position.value = (f"Record <b>{self.index + 1} of {len(records)}</b> &middot; "
                               f"{html.escape(self.annotator)}: {mine['submitted']} submitted, {mine['discarded']} discarded, "
                               f"{len(records) - mine['submitted'] - mine['discarded']} to go")
        self.quote.value = f"<b>Quote</b> (label this sentence):<br><big>{_html_text(record['quote'])}</big>"
        self.context.value = (f"<b>Context</b>: {_html_text(record['context'])}" if record["context"] else "")
        score = record["suggestion_score"]
        self.suggestion.value = (f"Model's suggestion: <b>{html.escape(str(record['suggested_label']))}</b>"
                                 + ("" if pd.isna(score) else f" (score {float(score):.2f})")
                                 + f" &middot; label in the data set: {html.escape(str(record['given_label']))}"
                                 + f" &middot; label quality {float(record['label_quality']):.3f}"
                                 + (f" &middot; <b>your answer: {html.escape(answer['label'] or answer['status'])}</b>"
                                    if answer else ""))
        for label, button in self.buttons.items():
            chosen = answer is not None and answer["status"] == "submitted" and answer["label"] == label
            button.button_style = "success" if chosen else "info" if label == record["suggested_label"] else ""
        self.discard_button.button_style = "warning" if answer and answer["status"] == "discarded" else ""

    def answers_by_status(self) -> dict[str, int]:
        """How many records this annotator has submitted and discarded."""
        mine = self.dataset.answers[self.dataset.answers["annotator"] == self.annotator]
        return {status: int((mine["status"] == status).sum()) for status in STATUSES}

    def _answer(self, status: str, label: str | None) -> None:
        if self.dataset.records.empty:
            problem = "There is no record to answer: run the cells of section 4 first."
        else:
            problem = self._name_problem()
        if problem is None:
            record_id = self.dataset.records["record_id"].iloc[self.index]
            try:
                self.dataset.add_answers([{"record_id": record_id, "annotator": self.annotator, "status": status,
                                           "label": label}])
            except (AnnotationError, OSError) as error:  # a button's error would only reach Jupyter's log: show it
                problem = f"Not saved: {error}"
        if problem:
            self.message.value = f"<span style='color:#b00'>{html.escape(problem)}</span>"
            return
        done = f"Saved: record {self.index + 1} {'discarded' if label is None else '&rarr; ' + html.escape(label)}."
        following = self._next_open(self.index + 1)
        if self.dataset.answer_of(self.dataset.records["record_id"].iloc[following], self.annotator) is not None:
            done += " You have answered every record: rerun the pause cell below to count."
        self.message.value = done
        self.show(following)

    def submit(self, label: str) -> None:
        """Submit `label` for the record shown (what its button does), then show the next open record."""
        self._answer("submitted", label)

    def discard(self) -> None:
        """Discard the record shown: you cannot judge it. It gets no label."""
        self._answer("discarded", None)
