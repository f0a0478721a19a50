"""Annotation with Argilla (notebook 6): what to review, the review dataset and its records.

Connecting lives in utils/argilla_connection.py (re-exported here), reading the answers back and
agreement in utils/annotation_answers.py.

The notebook shows the Argilla calls that matter (settings, records, suggestions, responses);
this module holds the plumbing around them: where the server address and key come from, clear
messages when something is wrong, the checks on the data sent, and the agreement table.

Without a server (none configured, or it does not answer) the notebook falls back to a form in
the notebook itself: `client` is then None and `dataset` a utils.annotation_form.NotebookDataset.
The functions here that take a client or a dataset accept both, and give the same tables back.

`argilla` is imported inside the functions, so `import utils` stays fast in the other notebooks.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd

# Re-exported: `from utils.annotation import connect` keeps working.
from .argilla_connection import (ANNOTATE_IN, AnnotationError, ArgillaCredentials, argilla_credentials,  # noqa: F401
                                 check_api_url, connect, connect_or_fall_back, connection_table)
from .data_quality import APPROACH_EMBEDDINGS
from .task import Task, default_task, load_task


# How notebook 6 names its run in the results log.
APPROACH_EMBEDDINGS_REVIEWED = f"{APPROACH_EMBEDDINGS} (labels reviewed in Argilla)"

QUESTION = "stance"  # the name of the label question in the review dataset
VECTOR = "embedding"  # the name of the vector, for "find similar" in the UI
STAND_IN_PREFIX = "stand-in-annotator-"
GUIDELINES = default_task().guidelines  # the default task's; each task has its own (TASK.guidelines)


NO_ANSWERS_YET = "No answers yet: annotate some records, then rerun the cells from the pause cell (section 5) down."

# ---------------------------------------------------------------- what to review

REVIEW_COLUMNS = ["text_original", "label_text", "suggested_label", "label_quality"]


def record_ids(df: pd.DataFrame) -> pd.Series:
    """A stable id per row from its text and given label, so a rerun finds the same records.

    Two identical rows get "-2", "-3", ... in order of appearance.
    """
    def key(row: pd.Series) -> str:
        parts = [str(row.get(c, "") if pd.notna(row.get(c, "")) else "")
                 for c in ("text_original", "text_preceding", "text_following", "label_text")]
        return "rec-" + hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]

    base = df.apply(key, axis=1) if len(df) else pd.Series([], dtype=str, index=df.index)
    seen = base.groupby(base).cumcount()
    return base.where(seen == 0, base + "-" + (seen + 1).astype(str))


def select_for_review(issues: pd.DataFrame, n: int, only_flagged: bool = False,
                      max_label_quality: float = 1.0) -> pd.DataFrame:
    """The `n` examples with the most doubtful labels (lowest label quality) to send for review.

    `only_flagged` keeps only the examples cleanlab flagged; `max_label_quality` drops examples
    whose label looks fine. An empty selection is an AnnotationError that says which filter emptied it.
    """
    missing = [c for c in ["label_quality", "is_label_issue"] if c not in issues.columns]
    if missing:
        raise AnnotationError(f"The table of examples lacks {missing}: pass the table from utils.label_issues_table "
                              "or utils.load_label_issues().")
    if not isinstance(n, int) or n <= 0:
        raise AnnotationError(f"The number of examples to review must be a positive whole number, got {n!r}.")
    if issues.empty:
        raise AnnotationError("The table of examples is empty, so there is nothing to review. If it comes from "
                              "notebook 5's file, notebook 5 flagged nothing: rerun it with more training data "
                              "(N_TRAIN), or remove the file so that this notebook finds doubtful examples itself.")
    picked = issues
    if only_flagged:
        picked = picked[picked["is_label_issue"].astype(bool)]
        if picked.empty:
            raise AnnotationError(f"No example of the {len(issues)} was flagged by cleanlab, so there is nothing to "
                                  "review with only_flagged=True. Set ONLY_FLAGGED = False to review the examples "
                                  "with the lowest label quality instead, or use more training data.")
    picked = picked[picked["label_quality"] <= max_label_quality]
    if picked.empty:
        raise AnnotationError(f"No example has a label quality <= {max_label_quality} (lowest: "
                              f"{issues['label_quality'].min():.3f}). Raise MAX_LABEL_QUALITY.")
    return picked.sort_values("label_quality", kind="stable").head(n)


def suggestion_scores(examples: pd.DataFrame, train: pd.DataFrame, pred_probs,
                      task: Task | str | None = None) -> pd.Series:
    """The model's probability for its suggested label, per example, from the out-of-sample
    probabilities of the training rows (matched by text and given label; NaN when not found).
    The columns of `pred_probs` are the task's label ids."""
    label2id = load_task(task).label2id
    pred_probs = np.asarray(pred_probs)
    if len(pred_probs) != len(train):
        raise ValueError(f"pred_probs has {len(pred_probs)} rows but train has {len(train)}: one row per example.")
    row_of = pd.Series(np.arange(len(train)), index=record_ids(train).to_numpy())
    rows = record_ids(examples).map(row_of)
    scores = []
    for row, suggested in zip(rows, examples["suggested_label"]):
        scores.append(np.nan if pd.isna(row) else float(pred_probs[int(row), label2id[suggested]]))
    return pd.Series(scores, index=examples.index, name="suggested_score")


# ---------------------------------------------------------------- dataset and records


class _NoServer:
    """What Argilla's settings classes get as their client when there is no server.

    Each field, question, metadata property and vector keeps a client for later calls to the
    server, and without one the SDK tries to connect to a default server. Building settings sends
    nothing, so with no server (annotating in the notebook) this empty stand-in is enough; on a
    server, the dataset made from the settings binds them to its own client.
    """

    class api:  # noqa: N801 - the attribute names the SDK reads
        fields = questions = metadata = vectors = None


def settings_client(client):
    """The client to give each part of a dataset's settings (field, question, metadata property, vector).

    The connected `client`; with no server (None), a stand-in: building settings sends nothing, and
    without any client Argilla's SDK would try to reach a default server.
    """
    return client or _NoServer()


def review_settings(embedding_dimensions: int, labels: list[str] | None = None, guidelines: str | None = None,
                    client=None, task: Task | str | None = None):
    """The review dataset's settings: what annotators see (fields), what they answer (the label
    question), what they can filter by (metadata) and the vector behind "find similar".

    `client` is the connected client, or None without a server: the design is the same either way.
    The label question offers the task's labels and the guidelines are the task's, unless `labels`
    or `guidelines` say otherwise.
    """
    import argilla as rg

    task = load_task(task)
    labels = list(task.labels if labels is None else labels)
    guidelines = task.guidelines if guidelines is None else guidelines
    if not isinstance(embedding_dimensions, (int, np.integer)) or embedding_dimensions <= 0:
        raise AnnotationError(f"The embedding size must be a positive whole number, got {embedding_dimensions!r}.")
    client = settings_client(client)
    return rg.Settings(
        guidelines=guidelines,
        fields=[
            rg.TextField(name="quote", title="Quote: label this sentence", client=client),
            rg.TextField(name="context", title="Context: the sentences around it", required=False, use_markdown=True,
                         client=client),
        ],
        questions=[rg.LabelQuestion(name=QUESTION, title=f"Label of the quote ({task.name})", labels=labels,
                                    client=client)],
        metadata=[
            rg.FloatMetadataProperty(name="label_quality", title="Label quality (low: doubtful label)", client=client),
            rg.TermsMetadataProperty(name="given_label", title="Label in the data set", options=labels, client=client),
            rg.TermsMetadataProperty(name="split", title="Split", client=client),
            rg.TermsMetadataProperty(name="flagged", title="Flagged by cleanlab", options=["yes", "no"], client=client),
        ],
        vectors=[rg.VectorField(name=VECTOR, title="Sentence embedding", dimensions=int(embedding_dimensions),
                                _client=client)],
    )


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()


def check_review_table(df: pd.DataFrame, labels: list[str] | None = None, task: Task | str | None = None) -> None:
    """AnnotationError naming the rows and columns that cannot become records; None when all is well.

    Labels must be the task's (or `labels`)."""
    labels = list(load_task(task).labels if labels is None else labels)
    if df.empty:
        raise AnnotationError("There are no examples to send: the table is empty. Check the selection above.")
    missing = [c for c in REVIEW_COLUMNS if c not in df.columns]
    if missing:
        raise AnnotationError(f"The table lacks the column(s) {missing}; a record needs {REVIEW_COLUMNS} "
                              f"(found: {list(df.columns)}).")
    problems = []
    empty_quote = [i for i, v in zip(df.index, df["text_original"]) if not _text(v)]
    if empty_quote:
        problems.append(f"empty quote (text_original) in row(s) {empty_quote[:10]}")
    for column in ("label_text", "suggested_label"):
        bad = [i for i, v in zip(df.index, df[column]) if v not in labels]
        if bad:
            problems.append(f"{column} not one of {labels} in row(s) {bad[:10]}")
    bad_quality = [i for i, v in zip(df.index, df["label_quality"]) if pd.isna(v)]
    if bad_quality:
        problems.append(f"missing label_quality in row(s) {bad_quality[:10]}")
    if "embedding" in df.columns:
        sizes = {len(v) if isinstance(v, (list, tuple, np.ndarray)) else 0 for v in df["embedding"]}
        if 0 in sizes or len(sizes) > 1:
            problems.append(f"embeddings missing or of different lengths ({sorted(sizes)})")
    if problems:
        raise AnnotationError("Some examples cannot become records: " + "; ".join(problems)
                              + ". Fix or drop these rows before sending them.")


def context_markdown(row: pd.Series) -> str:
    """The quote between its neighbours, the quote in bold, as the context field shows it."""
    parts = [_text(row.get("text_preceding")), f"**{_text(row.get('text_original'))}**", _text(row.get("text_following"))]
    return " ".join(p for p in parts if p)


def review_records(df: pd.DataFrame, agent: str = "embeddings-logistic-regression",
                   task: Task | str | None = None) -> list:
    """One `argilla.Record` per row, with the model's suggestion (label and score) pre-filled.

    Uses the columns text_original, text_preceding, text_following (context), label_text (the given
    label), suggested_label, suggested_score (optional), label_quality, split, is_label_issue and
    embedding (optional). Rows that cannot become records, e.g. with a label `task` does not have,
    raise an AnnotationError (see check_review_table).
    `agent` names the suggestion's source; Argilla allows letters, digits, spaces and - _ : . / in it.
    """
    import argilla as rg

    check_review_table(df, task=task)
    ids = record_ids(df)
    records = []
    for record_id, (_, row) in zip(ids, df.iterrows()):
        score = row.get("suggested_score")
        suggestion = rg.Suggestion(question_name=QUESTION, value=row["suggested_label"], agent=agent,
                                   score=None if score is None or pd.isna(score) else round(float(score), 4))
        metadata = {"label_quality": round(float(row["label_quality"]), 4), "given_label": row["label_text"],
                    "split": _text(row.get("split")) or "train",
                    "flagged": "yes" if bool(row.get("is_label_issue", False)) else "no"}
        fields = {"quote": _text(row["text_original"])}
        if _text(row.get("text_preceding")) or _text(row.get("text_following")):
            fields["context"] = context_markdown(row)
        vectors = {}
        if "embedding" in df.columns:
            vectors[VECTOR] = [float(x) for x in row["embedding"]]
        records.append(rg.Record(id=record_id, fields=fields, metadata=metadata, vectors=vectors,
                                 suggestions=[suggestion]))
    return records


def _same_design(existing, wanted) -> list[str]:
    """Differences between two datasets' settings that would break logging or reading back."""
    diffs = []
    fields_have, fields_want = {f.name for f in existing.fields}, {f.name for f in wanted.fields}
    if fields_have != fields_want:
        diffs.append(f"fields {sorted(fields_have)} instead of {sorted(fields_want)}")
    questions = {q.name: q for q in existing.questions}
    if QUESTION not in questions:
        diffs.append(f"no question named {QUESTION!r}")
    elif sorted(questions[QUESTION].labels) != sorted(wanted.questions[QUESTION].labels):
        diffs.append(f"labels {questions[QUESTION].labels} instead of {wanted.questions[QUESTION].labels}")
    vectors = {v.name: v.dimensions for v in existing.vectors}
    want_vectors = {v.name: v.dimensions for v in wanted.vectors}
    if vectors != want_vectors:
        diffs.append(f"vectors {vectors} instead of {want_vectors}")
    return diffs


def _find_dataset(client, name: str, workspace: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not found" is an answer here, not a warning
        return client.datasets(name=name, workspace=workspace)


def default_workspace(client) -> str:
    """The first workspace of the connected user; AnnotationError when there is none."""
    names = [w.name for w in client.workspaces]
    if not names:
        raise AnnotationError(f"The user {client.me.username!r} belongs to no workspace, so no dataset can be made. "
                              "An owner must add you to one (Argilla's web page: Settings -> Workspaces).")
    return names[0]


def notebook_datasets_dir():
    """Where the datasets annotated in the notebook (no server) keep their files: under results/."""
    from .metrics import output_dir

    return output_dir("6_annotation_argilla/in-notebook")


def get_or_create_dataset(client, name: str, settings, workspace: str | None = None, if_exists: str = "reuse"):
    """The review dataset on the server, and a sentence saying what happened.

    If a dataset called `name` exists already: "reuse" keeps it and its annotations (when its design
    matches `settings`), "new" creates the first free name `name-2`, `name-3`, ... and "error" stops.
    Nothing is ever deleted: to start over, delete the dataset yourself in the web page.
    With no server (`client` None), the same for a NotebookDataset under notebook_datasets_dir().
    """
    import argilla as rg

    if if_exists not in {"reuse", "new", "error"}:
        raise AnnotationError(f"IF_EXISTS must be 'reuse', 'new' or 'error', not {if_exists!r}.")
    if client is None:
        from .annotation_form import NotebookDataset

        return NotebookDataset.open(notebook_datasets_dir(), name, settings.questions[QUESTION].labels,
                                    settings.guidelines or "", if_exists=if_exists)
    workspace = workspace or default_workspace(client)
    existing = _find_dataset(client, name, workspace)
    if existing is not None:
        if if_exists == "error":
            raise AnnotationError(f"A dataset named {name!r} exists already in workspace {workspace!r}. Set "
                                  "IF_EXISTS = 'reuse' to continue with it and its annotations, 'new' to make one "
                                  "with a new name, or choose another DATASET_NAME.")
        if if_exists == "reuse":
            diffs = _same_design(existing.settings, settings)
            if diffs:
                raise AnnotationError(
                    f"A dataset named {name!r} exists in workspace {workspace!r} but it was made differently: "
                    + "; ".join(diffs) + ". Its annotations stay untouched. Set IF_EXISTS = 'new' to make a new "
                    "dataset, or choose another DATASET_NAME."
                )
            return existing, f"Reusing the existing dataset {name!r} in workspace {workspace!r} and its annotations."
        taken = {d.name for d in client.datasets if d.workspace.name == workspace}
        base, number = name, 2
        while name in taken:
            name, number = f"{base}-{number}", number + 1
    dataset = rg.Dataset(name=name, workspace=workspace, settings=settings, client=client)
    dataset.create()
    return dataset, f"Created the dataset {name!r} in workspace {workspace!r}."


_ANNOTATOR_ONLY = """Your user may annotate but not {what} from Python: only an owner or admin can (this
server's rule for the role 'annotator'). In a class the instructor has made the dataset with its
records (python -m utils.classroom): annotate in the web page, {url},
and your instructor pulls back the class's answers. Working alone? Use the owner's API key."""


def _forbidden(error: Exception) -> bool:
    """True for the server's "403 Forbidden": the user's role does not allow the request."""
    return getattr(error, "status_code", None) == 403


def _annotate_url(dataset) -> str:
    return f"{dataset._client.api_url}/dataset/{dataset.id}/annotation-mode"


def existing_record_ids(dataset) -> set[str]:
    """The ids of the records the dataset holds already."""
    return {str(record.id) for record in dataset.records(with_suggestions=False, with_responses=False,
                                                         with_vectors=False)}


def _log(dataset, records: list) -> None:
    """dataset.records.log without the SDK's batch-size warning; a rejection becomes an AnnotationError."""
    import logging

    from argilla._exceptions import ArgillaError

    sdk_log = logging.getLogger("argilla.sdk")
    level = sdk_log.level
    sdk_log.setLevel(logging.ERROR)  # the SDK warns each time it shrinks its batch size to the records at hand
    try:
        dataset.records.log(records, batch_size=min(256, len(records)))
    except ArgillaError as error:
        raise AnnotationError(f"The server refused the records: {str(error)[:600]}") from None
    finally:
        sdk_log.setLevel(level)


def _check_vector_sizes(dataset, records: list) -> None:
    """AnnotationError when the records' vectors do not have the size the dataset was made with.

    The server refuses them anyway, but its message names neither the cause nor the fix.
    """
    for vector in dataset.settings.vectors:
        found = sorted({len(r.vectors[vector.name]) for r in records if vector.name in r.vectors})
        if found and found != [vector.dimensions]:
            raise AnnotationError(
                f"The records' {vector.name!r} vectors have {' or '.join(map(str, found))} numbers, but the dataset "
                f"{dataset.name!r} was made for {vector.dimensions}: the embeddings come from another model than "
                "the dataset's. Use the embedding model the dataset was made with (EMBEDDING_MODEL), or set "
                "IF_EXISTS = 'new' to make a new dataset."
            )


def log_new_records(dataset, records: list) -> pd.DataFrame:
    """Send the records that the dataset does not hold yet; those it holds stay as they are,
    with their annotations. Returns a small table of what was sent and what was kept.

    `dataset` is on a server or a NotebookDataset (no server); the table is the same."""
    from .annotation_form import NotebookDataset, record_rows

    if isinstance(dataset, NotebookDataset):
        return dataset.add_records(record_rows(records))
    _check_vector_sizes(dataset, records)
    try:
        have = existing_record_ids(dataset)
    except Exception as error:  # the SDK's ForbiddenError; anything else is raised as it is
        if not _forbidden(error):
            raise
        raise AnnotationError(_ANNOTATOR_ONLY.format(what="read or add records", url=_annotate_url(dataset))) from None
    new = [r for r in records if str(r.id) not in have]
    if new:
        _log(dataset, new)
    return pd.DataFrame({"records": {"sent now": len(new), "already there (kept as they are)": len(records) - len(new),
                                     "in the dataset": len(have) + len(new)}})
