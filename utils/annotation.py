"""Annotation with Argilla (notebook 6): connect, build the review dataset, pull the answers back.

The notebook shows the Argilla calls that matter (settings, records, suggestions, responses);
this module holds the plumbing around them: where the server address and key come from, clear
messages when something is wrong, the checks on the data sent, and the agreement table.

Without a server (none configured, or it does not answer) the notebook falls back to a form in
the notebook itself: `client` is then None and `dataset` a utils.annotation_form.NotebookDataset.
The functions here that take a client or a dataset accept both, and give the same tables back.

`argilla` is imported inside the functions, so `import utils` stays fast in the other notebooks.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import secrets
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data_quality import APPROACH_EMBEDDINGS
from .task import Task, default_task, load_task

# How notebook 6 names its run in the results log.
APPROACH_EMBEDDINGS_REVIEWED = f"{APPROACH_EMBEDDINGS} (labels reviewed in Argilla)"

ANNOTATE_IN = ("argilla", "notebook")  # the values of notebook 6's ANNOTATE_IN setting
QUESTION = "stance"  # the name of the label question in the review dataset
VECTOR = "embedding"  # the name of the vector, for "find similar" in the UI
STAND_IN_PREFIX = "stand-in-annotator-"
GUIDELINES = default_task().guidelines  # the default task's; each task has its own (TASK.guidelines)


NO_ANSWERS_YET = "No answers yet: annotate some records, then rerun the cells from the pause cell (section 5) down."


class AnnotationError(Exception):
    """A problem with the Argilla server or the data to annotate; the message says what to do.

    In Jupyter and Colab it shows as its message alone, without a traceback: IPython calls
    `_render_traceback_` when an exception has it. The cell still fails and "Run all" stops.
    """

    def _render_traceback_(self) -> list[str]:
        lines = str(self).splitlines() or [""]
        return [f"{type(self).__name__}: {lines[0]}", *lines[1:]]


# ---------------------------------------------------------------- connecting

_NO_SERVER = """No Argilla server is configured.
To use one, give the notebook the address and the API key of a server in one of three ways:
  1. On Colab: the key icon in the left bar -> add two secrets, ARGILLA_API_URL and
     ARGILLA_API_KEY, and allow this notebook to read them; then run the settings cell again.
  2. Anywhere: set the environment variables ARGILLA_API_URL and ARGILLA_API_KEY before starting Jupyter.
  3. Run the settings cell again and type them when asked.
No server yet? The section "Connect to a server" explains the two set-ups: a free Hugging Face
Space from the Argilla template, or Argilla on your own machine with Docker."""


@dataclass(frozen=True)
class ArgillaCredentials:
    """Where to reach an Argilla server. The key is never shown (not even in the repr)."""

    api_url: str | None
    api_key: str | None = field(repr=False)
    source: str = "nowhere"

    def __repr__(self) -> str:
        key = "set" if self.api_key else "not set"
        return f"ArgillaCredentials(api_url={self.api_url!r}, api_key={key}, from {self.source})"


def _colab_secret(name: str) -> str | None:
    """A Colab secret, or None outside Colab / when it is missing or not shared with the notebook."""
    if "google.colab" not in sys.modules:
        return None
    try:
        from google.colab import userdata

        return userdata.get(name) or None
    except Exception:  # SecretNotFoundError, NotebookAccessError, TimeoutException: all mean "not available"
        return None


def _ask(prompt: str, secret: bool) -> str | None:
    """Ask the person at the keyboard; None where nobody can answer (a test run, a script)."""
    try:
        answer = getpass.getpass(prompt) if secret else input(prompt)
    except (EOFError, OSError, NotImplementedError):  # IPython's StdinNotImplementedError is a NotImplementedError
        return None
    return answer.strip() or None


def argilla_credentials(ask: bool = True) -> ArgillaCredentials:
    """ARGILLA_API_URL and ARGILLA_API_KEY from the environment, Colab secrets, or a prompt.

    They are looked up in that order, each variable on its own; with `ask`, what is still missing
    is asked for (the key with getpass, so it is not shown). Nothing is written anywhere.
    """
    found, sources = {}, []
    for name in ("ARGILLA_API_URL", "ARGILLA_API_KEY"):
        value, source = os.environ.get(name, "").strip() or None, "environment"
        if value is None:
            value, source = _colab_secret(name), "Colab secrets"
        if value is None and ask:
            what = "Argilla server address (Enter to skip): " if name.endswith("URL") else "Argilla API key: "
            if name.endswith("KEY") and found.get("ARGILLA_API_URL") is None:
                value = None  # no address, no point asking for a key
            else:
                value, source = _ask(what, secret=name.endswith("KEY")), "prompt"
        found[name] = value
        if value is not None:
            sources.append(source)
    return ArgillaCredentials(found["ARGILLA_API_URL"], found["ARGILLA_API_KEY"],
                              " and ".join(dict.fromkeys(sources)) or "nowhere")


def check_api_url(api_url: str) -> str:
    """The server address without a trailing slash; AnnotationError for an address that cannot work."""
    url = api_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise AnnotationError(f"ARGILLA_API_URL={url!r} is not a web address: it must start with http:// or "
                              "https://, e.g. https://your-name-your-space.hf.space or http://localhost:6900.")
    if "huggingface.co/spaces/" in url:
        owner_space = url.split("huggingface.co/spaces/", 1)[1].strip("/").split("/")
        direct = "-".join(owner_space[:2]).lower().replace("_", "-").replace(".", "-")
        raise AnnotationError(
            f"{url} is the Space's page on the Hub, not the server itself. Use the Space's direct address, "
            f"probably https://{direct}.hf.space (on the Space page: the three dots -> 'Embed this Space')."
        )
    if url.endswith("/api") or "/api/" in url:
        raise AnnotationError(f"ARGILLA_API_URL={url!r} ends in an API path: give the server's address without "
                              "it, e.g. http://localhost:6900.")
    return url


def connect(credentials: ArgillaCredentials, timeout: int = 30, retries: int = 1):
    """An `argilla.Argilla` client for the server, after checking that it answers and knows the key.

    Every failure becomes an AnnotationError that says what to fix: nothing configured, an address
    that is not a server, a server that does not answer (asleep, stopped, wrong port), a wrong key.
    """
    if not credentials.api_url:
        raise AnnotationError(_NO_SERVER)
    url = check_api_url(credentials.api_url)
    if not credentials.api_key:
        raise AnnotationError(f"The server address is set ({url}) but the API key is not. Set ARGILLA_API_KEY "
                              "(environment or Colab secret): in Argilla's web page, your avatar -> My settings "
                              "-> API key.")
    import argilla as rg
    import httpx
    from argilla._exceptions import ArgillaCredentialsError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = rg.Argilla(api_url=url, api_key=credentials.api_key, timeout=timeout, retries=retries)
            client.me  # a first request with the key: a wrong key fails here
    except ArgillaCredentialsError:
        raise AnnotationError(f"The server at {url} answered but refused the API key. Copy the key again from "
                              "Argilla's web page (your avatar -> My settings -> API key) into ARGILLA_API_KEY; "
                              "check that it belongs to this server.") from None
    except (httpx.ConnectError, httpx.TimeoutException) as error:
        raise AnnotationError(
            f"No Argilla server answers at {url} ({type(error).__name__}: {error}).\n"
            "Check the address and that the server runs: a Hugging Face Space must show 'Running' on its page "
            "(a free Space sleeps when unused; opening its page wakes it, which takes a minute or two); "
            "a Docker server must be started (docker ps) and reachable from where this notebook runs - "
            "Colab cannot reach http://localhost on your laptop."
        ) from None
    except (httpx.HTTPError, ValueError) as error:
        raise AnnotationError(f"{url} answered, but not like an Argilla server ({type(error).__name__}). Check "
                              "ARGILLA_API_URL: it is the address you open in the browser to see Argilla.") from None
    return client


def connect_or_fall_back(credentials: ArgillaCredentials, annotate_in: str = "argilla", timeout: int = 30,
                         retries: int = 1):
    """An Argilla client (see `connect`), or None: annotate in the notebook instead. Says which, and why.

    `annotate_in` is "argilla" (connect; if that fails, print why and fall back to the notebook) or
    "notebook" (no server at all). Anything else is an AnnotationError.
    """
    if annotate_in not in ANNOTATE_IN:
        raise AnnotationError(f"ANNOTATE_IN must be 'argilla' (Argilla's web page, falling back to the notebook when "
                              f"no server answers) or 'notebook' (a form in this notebook), not {annotate_in!r}.")
    if annotate_in == "notebook":
        print("ANNOTATE_IN = 'notebook': no server; you annotate in a form in this notebook (section 5).")
        return None
    try:
        return connect(credentials, timeout=timeout, retries=retries)
    except AnnotationError as error:
        print("You annotate in a form in this notebook instead (section 5); everything after it works the same.\n"
              f"Why not on the server: {error}\n"
              "To use the server, fix that and run again from the settings cell. To annotate in the notebook without "
              "this message, set ANNOTATE_IN = 'notebook'.")
        return None


def connection_table(client) -> pd.DataFrame:
    """Who you are on the server: address, user, role, workspaces, server version (never the key).

    With no server (`client` None), where the annotation happens instead.
    """
    if client is None:
        return pd.DataFrame({"": {"server": "none", "annotate in": "this notebook: a form in section 5"}})
    me = client.me
    info = {
        "server": client.api_url,
        "user": me.username,
        "role": str(getattr(me.role, "value", me.role)),
        "workspaces": ", ".join(w.name for w in client.workspaces) or "(none)",
    }
    try:
        info["Argilla server version"] = client.api.http_client.get("/api/v1/version").json()["version"]
    except Exception:
        pass
    return pd.DataFrame({"": info})


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
    client = client or _NoServer()
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


def _suggestion_of(record):
    """The record's suggestion for the label question, or None."""
    return {s.question_name: s for s in record.suggestions}.get(QUESTION)


# ---------------------------------------------------------------- stand-in annotators


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
