"""Reading the annotation back (notebook 6): stand-in annotators for tests and ci mode, progress,
the submitted answers as a table, agreement between annotators, and the corrected labels.

Works with an Argilla dataset and with the notebook-form stand-in (utils.annotation_form).
"""

from __future__ import annotations

import secrets
import warnings

import numpy as np
import pandas as pd

from .annotation import (_ANNOTATOR_ONLY, NO_ANSWERS_YET, QUESTION, STAND_IN_PREFIX, _annotate_url, _forbidden,
                         _log, record_ids)
from .argilla_connection import AnnotationError
from .task import Task, load_task


# ---------------------------------------------------------------- stand-in annotators

def _suggestion_of(record):
    """The record's suggestion for the label question, or None."""
    return {s.question_name: s for s in record.suggestions}.get(QUESTION)


def stand_in_annotators(client, dataset, n: int) -> list:
    """`n` annotator users named stand-in-annotator-1, -2, ... (created once, with a random password
    nobody needs) who belong to the dataset's workspace. Creating users needs the owner or admin role."""
    import argilla as rg

    role = str(getattr(client.me.role, "value", client.me.role))
    if role != "owner":  # Argilla 2.x lets only owners create users, admins included
        raise AnnotationError(f"Your user has the role {role!r}: only the server's owner can create the stand-in "
                              "annotators. Set STAND_IN_ANNOTATORS = 0 and annotate in the web page instead.")
    workspace = dataset.workspace
    users = []
    for k in range(1, n + 1):
        username = f"{STAND_IN_PREFIX}{k}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            user = client.users(username=username)
        if user is None:
            user = rg.User(username=username, first_name=f"Stand-in {k}", role="annotator",
                           password=secrets.token_urlsafe(16), client=client).create()
        if user.username not in {member.username for member in workspace.users}:
            user.add_to_workspace(workspace)
        users.append(user)
    return users


def _stand_in_label(rng: np.random.Generator, suggestion: str | None, given: str, accept_suggestion: float) -> str:
    """A stand-in's answer: the model's suggestion with probability `accept_suggestion`, else the given label."""
    return suggestion if suggestion is not None and rng.random() < accept_suggestion else given


def _add_stand_in_answers(dataset, n_annotators: int, accept_suggestion: float, seed: int) -> pd.DataFrame:
    """add_stand_in_responses for a NotebookDataset (no server): the answers go into its answers file."""
    rng = np.random.default_rng(seed)
    names = [f"{STAND_IN_PREFIX}{k}" for k in range(1, n_annotators + 1)]
    answered = set(zip(dataset.answers["record_id"], dataset.answers["annotator"]))
    answers = []
    for record in dataset.records.itertuples():
        for name in names:
            if (record.record_id, name) not in answered:
                label = _stand_in_label(rng, record.suggested_label, record.given_label, accept_suggestion)
                answers.append({"record_id": record.record_id, "annotator": name, "status": "submitted",
                                "label": label})
    dataset.add_answers(answers)
    return pd.DataFrame({"submitted now": {name: sum(a["annotator"] == name for a in answers) for name in names}})


def add_stand_in_responses(client, dataset, n_annotators: int, accept_suggestion: float = 0.7,
                           seed: int = 42) -> pd.DataFrame | None:
    """Submit answers from code, standing in for human annotators (in CI, or to try the steps alone).

    Each stand-in takes the model's suggestion with probability `accept_suggestion`, else keeps the
    given label. Records a stand-in has answered before are left alone. Returns answers per stand-in;
    with no stand-ins (`n_annotators` 0) it says so and returns None. `dataset` is on a server or a
    NotebookDataset. These answers say nothing about the data: only humans can say which label is right.
    """
    import argilla as rg

    from .annotation_form import NotebookDataset

    if n_annotators <= 0:
        print("No stand-in annotators (STAND_IN_ANNOTATORS = 0): nobody answers on your behalf, so every answer "
              "counted below is a person's.")
        return None
    if isinstance(dataset, NotebookDataset):
        return _add_stand_in_answers(dataset, n_annotators, accept_suggestion, seed)
    users = stand_in_annotators(client, dataset, n_annotators)
    rng = np.random.default_rng(seed)
    counts = {user.username: 0 for user in users}
    changed = []
    for record in dataset.records(with_suggestions=True, with_responses=True, with_vectors=False):
        answered = {str(r.user_id) for r in record.responses[QUESTION]}
        suggestion = _suggestion_of(record)
        suggestion = suggestion.value if suggestion is not None else None
        given = record.metadata["given_label"]
        added = False
        for user in users:
            if str(user.id) in answered:
                continue
            label = _stand_in_label(rng, suggestion, given, accept_suggestion)
            record.responses.add(rg.Response(question_name=QUESTION, value=label, user_id=user.id, status="submitted"))
            counts[user.username] += 1
            added = True
        if added:
            changed.append(record)
    if changed:
        _log(dataset, changed)
    return pd.DataFrame({"submitted now": counts})


# ---------------------------------------------------------------- how far the annotation is


def _server_answers(client, dataset) -> tuple[list[tuple[str, str, str]], int]:
    """(annotator, status, record id) of every answer on the server (submitted, draft or discarded),
    and the number of records."""
    names = _usernames(client)
    try:
        records = list(dataset.records(with_suggestions=False, with_responses=True, with_vectors=False))
    except Exception as error:  # the SDK's ForbiddenError; anything else is raised as it is
        if not _forbidden(error):
            raise
        raise AnnotationError(_ANNOTATOR_ONLY.format(what="count the answers", url=_annotate_url(dataset))) from None
    answers = [(names.get(str(response.user_id), str(response.user_id)),
                str(getattr(response.status, "value", response.status)), str(record.id))
               for record in records for response in record.responses]
    return answers, len(records)


def annotation_progress(client, dataset) -> pd.DataFrame | None:
    """The pause cell: what to do, then how many answers each annotator has given so far.

    Prints where to annotate (the web page, or the form for a NotebookDataset) and how many records
    have a submitted answer; returns a table of answers per annotator and status, or None when
    nobody has answered anything yet. Rerun it while people annotate.
    """
    from .annotation_form import STATUSES, NotebookDataset

    if isinstance(dataset, NotebookDataset):
        where, statuses = "in the form above", list(STATUSES)
        answers = list(dataset.answers[["annotator", "status", "record_id"]].itertuples(index=False, name=None))
        n_records = len(dataset.records)
    else:
        where, statuses = f"in the web page, {_annotate_url(dataset)}", ["submitted", "draft", "discarded"]
        answers, n_records = _server_answers(client, dataset)
    print(f"Annotate {where}: read the quote, keep or change the suggested label, submit. Rerun this cell to count; "
          "when you have submitted what you want, run the cells below.")
    table = pd.DataFrame(answers, columns=["annotator", "status", "record_id"])
    answered = table.loc[table["status"] == "submitted", "record_id"].nunique()
    if answered == 0:
        drafts = " Drafts do not count: press Submit." if (table["status"] == "draft").any() else ""
        print(f"No submitted answers yet (0 of {n_records} records).{drafts} Annotate, then rerun this cell.")
    else:
        print(f"{answered} of {n_records} records have at least one submitted answer.")
    if table.empty:
        return None
    counts = pd.crosstab(table["annotator"], table["status"]).reindex(columns=statuses, fill_value=0)
    counts.columns.name = "answers"
    return counts


# ---------------------------------------------------------------- reading the answers back

RESPONSE_COLUMNS = ["record_id", "quote", "given_label", "suggested_label", "suggestion_score", "label_quality",
                    "annotator", "label"]


def _usernames(client) -> dict[str, str]:
    try:
        return {str(user.id): user.username for user in client.users}
    except Exception:  # an annotator may not list users: show ids instead
        return {str(client.me.id): client.me.username}


def submitted_responses(client, dataset) -> pd.DataFrame:
    """Every submitted answer, one row per record and annotator (drafts and discarded ones left out).

    Only records with at least one submitted answer are fetched (a filter on the server). `dataset`
    is on a server or a NotebookDataset (no server): the table is the same. With no submitted answer
    yet it says so and returns the table empty, so the cells after it run and show nothing.
    """
    import argilla as rg

    from .annotation_form import NotebookDataset

    if isinstance(dataset, NotebookDataset):
        responses = dataset.submitted_responses()
        if responses.empty:
            print(NO_ANSWERS_YET)
        return responses
    names = _usernames(client)
    query = rg.Query(filter=rg.Filter(("response.status", "==", "submitted")))
    rows = []
    try:
        records = list(dataset.records(query=query, with_suggestions=True, with_responses=True, with_vectors=False))
    except Exception as error:  # the SDK's ForbiddenError; anything else is raised as it is
        if not _forbidden(error):
            raise
        raise AnnotationError(_ANNOTATOR_ONLY.format(what="read the answers", url=_annotate_url(dataset))) from None
    for record in records:
        suggestion = _suggestion_of(record)
        for response in record.responses[QUESTION]:
            if str(getattr(response.status, "value", response.status)) != "submitted":
                continue
            rows.append({
                "record_id": str(record.id), "quote": record.fields["quote"],
                "given_label": record.metadata.get("given_label"),
                "suggested_label": suggestion.value if suggestion else None,
                "suggestion_score": suggestion.score if suggestion else None,
                "label_quality": record.metadata.get("label_quality"),
                "annotator": names.get(str(response.user_id), str(response.user_id)), "label": response.value,
            })
    if not rows:
        print(NO_ANSWERS_YET + " In the web page, press Submit: a draft does not count.")
    return pd.DataFrame(rows, columns=RESPONSE_COLUMNS)


def responses_to_dataset(responses: pd.DataFrame):
    """The answers as a Hugging Face `datasets.Dataset` (e.g. to save or push to the Hub)."""
    import datasets

    return datasets.Dataset.from_pandas(responses.reset_index(drop=True), preserve_index=False)


def _agreement_row(name: str, a: pd.Series, b: pd.Series, labels: list[str]) -> dict:
    from sklearn.metrics import cohen_kappa_score

    a, b = a.astype(str), b.astype(str)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # kappa is undefined (NaN) when only one label occurs
        kappa = cohen_kappa_score(a, b, labels=labels) if len(a) else np.nan
    return {"comparison": name, "records": len(a), "share agreeing": float((a == b).mean()) if len(a) else np.nan,
            "Cohen's kappa": float(kappa)}


def agreement_table(responses: pd.DataFrame, task: Task | str | None = None) -> pd.DataFrame:
    """How often two sources give the same label, and Cohen's kappa (agreement beyond chance:
    1 = always the same, 0 = no better than chance).

    Rows: each pair of annotators (on the records both answered), each annotator and the majority
    vote against the label in the data set, and against the model's suggestion. With no answers,
    it says so and returns an empty table. Kappa counts the task's labels.
    """
    task = load_task(task)
    if responses.empty:
        print(NO_ANSWERS_YET)
        return pd.DataFrame(columns=["records", "share agreeing", "Cohen's kappa"]).rename_axis("comparison")
    wide = responses.pivot_table(index="record_id", columns="annotator", values="label", aggfunc="first")
    info = responses.drop_duplicates("record_id").set_index("record_id")
    annotators = list(wide.columns)
    rows = []
    for i, first in enumerate(annotators):
        for second in annotators[i + 1:]:
            both = wide[[first, second]].dropna()
            rows.append(_agreement_row(f"{first} vs {second}", both[first], both[second], list(task.labels)))
    majority = corrected_labels(responses, task).set_index("record_id")["label"]
    for name, answered in [*[(a, wide[a].dropna()) for a in annotators], ("majority vote", majority)]:
        rows.append(_agreement_row(f"{name} vs given label", answered, info.loc[answered.index, "given_label"],
                                   list(task.labels)))
        rows.append(_agreement_row(f"{name} vs suggestion", answered, info.loc[answered.index, "suggested_label"],
                                   list(task.labels)))
    return pd.DataFrame(rows).set_index("comparison").round(3)


def corrected_labels(responses: pd.DataFrame, task: Task | str | None = None) -> pd.DataFrame:
    """One label per record: the majority of the submitted answers.

    A tie keeps the label in the data set if it is among the tied labels (a change needs a
    majority), else the model's suggestion if tied, else the first tied label in the task's order.
    """
    labels = list(load_task(task).labels)
    rows = []
    for record_id, group in responses.groupby("record_id", sort=False):
        counts = group["label"].value_counts()
        tied = list(counts[counts == counts.max()].index)
        given, suggested = group["given_label"].iloc[0], group["suggested_label"].iloc[0]
        if len(tied) == 1:
            label = tied[0]
        elif given in tied:
            label = given
        elif suggested in tied:
            label = suggested
        else:
            label = min(tied, key=labels.index)
        rows.append({"record_id": record_id, "quote": group["quote"].iloc[0], "given_label": given, "label": label,
                     "answers": len(group), "unanimous": len(counts) == 1, "changed": label != given})
    return pd.DataFrame(rows, columns=["record_id", "quote", "given_label", "label", "answers", "unanimous", "changed"])


def apply_corrections(train: pd.DataFrame, corrections: pd.DataFrame,
                      task: Task | str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A copy of `train` with the reviewed labels, and a table: reviewed / found in train / changed.

    Rows are matched by their record id (text and given label, see record_ids); `label` and
    `label_text` are both updated. A corrected label the task does not have is an AnnotationError.
    """
    missing = [c for c in ("record_id", "label") if c not in corrections.columns]
    if missing:
        raise AnnotationError(f"The corrections lack the column(s) {missing}: pass the table from "
                              "utils.corrected_labels().")
    label2id = load_task(task).label2id
    unknown = sorted(set(corrections["label"].astype(str)) - set(label2id))
    if unknown:
        raise AnnotationError(f"Some corrected labels are not labels of this task: {unknown} (its labels: "
                              f"{list(label2id)}). The review dataset's label question must offer exactly these "
                              "labels: check its settings (review_settings).")
    out = train.copy()
    ids = record_ids(train)
    new_label = dict(zip(corrections["record_id"], corrections["label"]))
    found = ids.isin(new_label.keys())
    before = out["label_text"].copy()
    out.loc[found, "label_text"] = ids[found].map(new_label)
    out["label"] = out["label_text"].map(label2id).astype(int)
    changed = int((out["label_text"] != before).sum())
    summary = pd.DataFrame({"rows": {"reviewed records": len(corrections), "found in the training data": int(found.sum()),
                                     "labels changed": changed}})
    return out, summary
