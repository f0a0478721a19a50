"""Argilla for a class: one command prepares a real Argilla server for N students (for instructors).

    ARGILLA_API_URL=https://you-argilla.hf.space ARGILLA_API_KEY=<owner key> \\
        python -m utils.classroom --students 25 --passwords class-passwords.csv
    python -m utils.classroom --roster roster.csv --groups 5 --passwords class-passwords.csv

It creates, on the server the owner's key opens:
  * a workspace for the class (or one per group: `<workspace>-group-1`, ...);
  * one annotator account per student (usernames from the roster CSV's `username` column, or
    student01 .. studentNN), each with a random password, written to the instructor's CSV and
    nowhere else (the file is readable by its owner only);
  * notebook 6's review dataset in each workspace, with the doubtful examples that notebook 5
    saved (utils.label_issues_path(), or --issues), each record to be answered by several students.

Rerunning it is safe: workspaces, users, datasets and records that exist are kept; the passwords CSV
is only ever appended to (new users), never rewritten, so every password in it stays valid.
Passwords are sent only over https, or over plain http to this machine (localhost); --insecure allows
plain http to another machine, for a network you trust.
Students sign in to the web page with their username and password and copy their API key from
*My settings* into notebook 6 (ARGILLA_API_KEY); STAND_IN_ANNOTATORS must be 0 for them.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import os
import pathlib
import re
import secrets
import stat
import sys
import time
import urllib.parse
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .annotation import (AnnotationError, ArgillaCredentials, argilla_credentials, connect, get_or_create_dataset,
                         log_new_records, review_records, review_settings, select_for_review)
from .data import DataError
from .data_quality import LABEL_ISSUE_COLUMNS, label_issues_path
from .task import DEFAULT_TASK, Task, TaskError, load_task

DEFAULT_WORKSPACE = "hands-on-transformers"
# Notebook 6's DATASET_NAME, "{task}-label-review", for the default task: with the same name, the students'
# notebook finds (reuses) this dataset. For another task (--task), the name is "<task>-label-review".
DEFAULT_DATASET = f"{DEFAULT_TASK}-label-review"
PASSWORD_COLUMNS = ["username", "password", "workspace", "first_name", "last_name"]
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ROLES = ("annotator", "admin")


@dataclass(frozen=True)
class Student:
    """One account to create: the username students sign in with, and their group (None: no groups)."""

    username: str
    first_name: str = ""
    last_name: str = ""
    group: str | None = None


def numbered_students(n: int) -> list[Student]:
    """student01 .. studentNN (at least two digits, so they sort in order)."""
    if not isinstance(n, int) or n <= 0:
        raise AnnotationError(f"The number of students must be a positive whole number, got {n!r}.")
    width = max(2, len(str(n)))
    return [Student(f"student{k:0{width}d}") for k in range(1, n + 1)]


def read_roster(path: pathlib.Path) -> list[Student]:
    """Students from a CSV with a `username` column (optional: first_name, last_name, group)."""
    if not path.is_file():
        raise AnnotationError(f"No roster at {path}: give a CSV file with a 'username' column, one row per student.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise AnnotationError(f"{path} is not a readable CSV file ({type(error).__name__}): save the roster as "
                              "UTF-8 CSV with a 'username' column.") from None
    if "username" not in df.columns:
        raise AnnotationError(f"{path} has no 'username' column (found: {list(df.columns)}): add one, one row per "
                              "student; first_name, last_name and group are optional.")
    names = df["username"].str.strip()
    bad = [f"line {i + 2}: {v!r}" for i, v in enumerate(names) if not NAME_PATTERN.match(v)]
    if bad:
        raise AnnotationError(f"{path}: usernames must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                              f"letter or digit; fix {bad[:5]}.")
    repeated = sorted(names[names.duplicated()].unique())
    if repeated:
        raise AnnotationError(f"{path}: the username(s) {repeated} occur more than once; each student needs their own.")
    column = df.get("group", pd.Series([""] * len(df)))
    return [Student(name, str(first).strip(), str(last).strip(), str(group).strip() or None)
            for name, first, last, group in zip(names, df.get("first_name", names), df.get("last_name", [""] * len(df)),
                                                column)]


def assign_groups(students: list[Student], groups: int) -> list[Student]:
    """Students dealt round-robin into groups 1..`groups` (a roster's own group column wins; 0: no groups)."""
    if groups < 0:
        raise AnnotationError(f"--groups must be 0 (everyone shares one dataset) or more, got {groups}.")
    if groups == 0 or any(s.group for s in students):
        return students
    return [Student(s.username, s.first_name, s.last_name, str(i % groups + 1)) for i, s in enumerate(students)]


def workspace_of(student: Student, workspace: str) -> str:
    """The workspace a student belongs to: the class's, or their group's."""
    if student.group is None:
        return workspace
    return f"{workspace}-group-{re.sub(r'[^a-z0-9]+', '-', student.group.lower()).strip('-')}"


# ---------------------------------------------------------------- the instructor's passwords CSV


def _make_private(fd: int, path: pathlib.Path) -> None:
    """Make the open passwords file `fd` readable by its owner only (mode 600), saying so when it was not.

    O_CREAT's mode applies only to a new file: one copied, or made by hand or by another tool, keeps
    whatever mode it had, and a password in it is no secret on a shared machine.
    """
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o077:
        os.fchmod(fd, 0o600)
        warnings.warn(f"{path} could be read by others (mode {mode:04o}): it is now {0o600:04o}, readable by its "
                      "owner only. Passwords that others could read may have been seen: reset them in Argilla if "
                      "that matters.", stacklevel=3)


def read_passwords(path: pathlib.Path) -> dict[str, dict[str, str]]:
    """The rows of an existing passwords CSV by username ({} when there is no file yet).

    A passwords file of this command that others can read is made private (mode 600), with a warning.
    """
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != PASSWORD_COLUMNS:
            raise AnnotationError(f"{path} exists but is not a passwords file of this command (columns "
                                  f"{reader.fieldnames}, expected {PASSWORD_COLUMNS}). It is left untouched: give "
                                  "another --passwords path.")
        _make_private(handle.fileno(), path)
        return {row["username"]: row for row in reader}


def append_password(path: pathlib.Path, row: dict[str, str]) -> None:
    """Add one row; the file gets the header when new, and is readable by its owner only (mode 600).

    The row is on disk (flushed and synced) before the account is created, so a crash can never
    leave an account whose password nobody knows.
    """
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    _make_private(fd, path)  # before the password is written
    with os.fdopen(fd, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PASSWORD_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())


# ---------------------------------------------------------------- the server


def require_private_transport(api_url: str, insecure: bool = False) -> None:
    """AnnotationError unless passwords sent to `api_url` are safe from the network: https, or plain http
    to this machine (localhost, 127.0.0.1, ::1). With `insecure`, plain http to another machine is
    allowed with a warning (a network the instructor trusts, e.g. a server in the classroom)."""
    parts = urllib.parse.urlsplit(api_url.strip())
    if parts.scheme.lower() != "http":
        return
    host = (parts.hostname or "").lower()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost" or host.endswith(".localhost")
    if loopback:
        return
    if insecure:
        # stacklevel 1: one place for Python's once-per-location rule, so the command, which sends passwords
        # from several functions, warns once per host.
        warnings.warn(f"--insecure: the students' passwords go unencrypted to {host}, over plain http; anyone on the "
                      "network between can read them.", stacklevel=1)
        return
    raise AnnotationError(
        f"{api_url} is plain http to another machine ({host}): the students' passwords would travel unencrypted. "
        f"Use the server's https:// address (a Hugging Face Space has one: https://<name>.hf.space), or, on a network "
        "you trust, add --insecure.")



def require_owner(client) -> None:
    """AnnotationError unless the key belongs to an owner: only owners may create users and workspaces."""
    role = str(getattr(client.me.role, "value", client.me.role))
    if role != "owner":
        raise AnnotationError(
            f"The API key belongs to {client.me.username!r}, whose role is {role!r}. Creating workspaces and users "
            "needs the owner's key (an admin or annotator key is not enough): on a Hugging Face Space that is the "
            "key of the user who created the Space (sign in with it, avatar -> My settings -> API key).")


def _quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns "not found"; here that is an answer, not a problem
        return call(*args, **kwargs)


def ensure_workspace(client, name: str):
    """The workspace called `name`, created when missing."""
    import argilla as rg

    if not NAME_PATTERN.match(name):
        raise AnnotationError(f"Workspace name {name!r}: use letters, digits, '.', '_' or '-'.")
    return _quiet(client.workspaces, name) or rg.Workspace(name=name, client=client).create()


def read_issues(path: pathlib.Path) -> pd.DataFrame:
    """Notebook 5's saved examples (label_issues.parquet), with `embedding` as lists of floats."""
    if not path.is_file():
        raise AnnotationError(f"No examples to review at {path}. Run notebook 5 once in the mode the class uses (e.g. "
                              "`make course MODE=gpu`): it saves its ranked examples there. Or give --issues FILE.")
    try:
        df = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a file that is not parquet
        raise AnnotationError(f"{path} is not notebook 5's examples file (a parquet file written by "
                              f"utils.save_label_issues): {type(error).__name__}.") from None
    missing = [c for c in LABEL_ISSUE_COLUMNS if c not in df.columns]
    if missing:
        raise AnnotationError(f"{path} lacks the column(s) {missing}: write it with utils.save_label_issues (notebook 5).")
    df["embedding"] = [np.asarray(v, dtype=float).tolist() for v in df["embedding"]]
    return df


def prepare_class(client, students: list[Student], passwords: pathlib.Path, issues: pd.DataFrame, *,
                  workspace: str = DEFAULT_WORKSPACE, dataset_name: str = DEFAULT_DATASET, n_review: int = 60,
                  min_submitted: int = 3, role: str = "annotator", task: Task | str | None = None,
                  insecure: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Create what is missing (workspaces, accounts, datasets, records); keep what exists.

    The datasets ask for `task`'s labels (default: the default task's), with its guidelines.
    Passwords go to the server only over https or to this machine (see require_private_transport).

    Returns two tables: one row per student (workspace, what happened to the account) and one row
    per dataset (records sent now and in all). Passwords appear in neither: only in `passwords`.
    """
    import argilla as rg

    if role not in ROLES:
        raise AnnotationError(f"role must be one of {ROLES}, not {role!r}.")
    if min_submitted <= 0:
        raise AnnotationError(f"--min-submitted must be at least 1, got {min_submitted}.")
    require_private_transport(client.api_url, insecure)  # before any password is made or sent
    require_owner(client)
    saved = read_passwords(passwords)
    to_review = select_for_review(issues, n_review)
    records = review_records(to_review, task=task)  # checked before anything is created: bad data stops here
    existing = {user.username: user for user in client.users}
    workspaces = {}
    rows = []
    for student in students:
        ws_name = workspace_of(student, workspace)
        if ws_name not in workspaces:
            ws = ensure_workspace(client, ws_name)
            workspaces[ws_name] = (ws, {user.username for user in ws.users})
        ws, members = workspaces[ws_name]
        user, row = existing.get(student.username), saved.get(student.username)
        if user is not None:
            account = "kept" if row else "kept; its password is not in the CSV (reset it in Argilla if needed)"
        else:
            if row is None:
                row = {"username": student.username, "password": secrets.token_urlsafe(12), "workspace": ws_name,
                       "first_name": student.first_name or student.username, "last_name": student.last_name}
                append_password(passwords, row)
            user = rg.User(username=student.username, first_name=row["first_name"] or student.username,
                           last_name=row["last_name"] or None, role=role, password=row["password"],
                           client=client).create()
            account = "created"
        if student.username not in members:
            user.add_to_workspace(ws)
            members.add(student.username)
        rows.append({"username": student.username, "workspace": ws_name,
                     "role": str(getattr(user.role, "value", user.role)), "account": account})
    settings = review_settings(embedding_dimensions=len(to_review["embedding"].iloc[0]), task=task)
    # Each record stays in every student's queue until `min_submitted` students answered it,
    # so the class can measure agreement (notebook 6, section 6).
    settings.distribution = rg.TaskDistribution(min_submitted=min_submitted)
    datasets = []
    for ws_name in workspaces:
        dataset, message = get_or_create_dataset(client, dataset_name, settings, workspace=ws_name, if_exists="reuse")
        sent = log_new_records(dataset, records)["records"]
        datasets.append({"workspace": ws_name, "dataset": dataset.name, "records sent now": int(sent["sent now"]),
                         "records in all": int(sent["in the dataset"]), "what happened": message.split(" ")[0],
                         "annotate at": f"{client.api_url}/dataset/{dataset.id}/annotation-mode"})
    return pd.DataFrame(rows), pd.DataFrame(datasets)


def login(api_url: str, username: str, password: str, timeout: int = 30, insecure: bool = False):
    """An argilla.Argilla client for a user, from their username and password (as the web page signs in)."""
    import argilla as rg
    import httpx

    require_private_transport(api_url, insecure)

    url = api_url.rstrip("/")
    token = httpx.post(f"{url}/api/v1/token", data={"username": username, "password": password}, timeout=timeout)
    if token.status_code == 401:
        raise AnnotationError(f"{url} refused the username {username!r} with this password: check the CSV row.")
    token.raise_for_status()
    me = httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                   timeout=timeout)
    me.raise_for_status()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rg.Argilla(api_url=url, api_key=me.json()["api_key"], timeout=timeout)


def student_records(client, dataset, limit: int = 1000) -> list[dict]:
    """The records a user sees in the web page, as the server returns them (id, external_id, fields, ...).

    The SDK lists records through an endpoint only owners and admins may use; the web page asks the
    server for "my records" instead, which works for annotators too.
    """
    found = client.api.http_client.post(f"/api/v1/me/datasets/{dataset.id}/records/search", json={},
                                        params={"limit": limit})
    found.raise_for_status()
    return [item["record"] for item in found.json()["items"]]


def check_login(api_url: str, passwords: pathlib.Path, dataset_name: str = DEFAULT_DATASET,
                insecure: bool = False) -> str:
    """Sign in as the first student of the CSV and check they see the dataset; a sentence saying so."""
    rows = list(read_passwords(passwords).values())
    if not rows:  # every account existed before this CSV: nobody's password is known here
        return f"Sign-in check skipped: {passwords} holds no password (all accounts existed already)."
    first = rows[0]
    student = login(api_url, first["username"], first["password"], insecure=insecure)
    dataset = _quiet(student.datasets, dataset_name, workspace=first["workspace"])
    if dataset is None:
        raise AnnotationError(f"{first['username']} signed in but sees no dataset {dataset_name!r} in workspace "
                              f"{first['workspace']!r}: rerun this command.")
    n = len(student_records(student, dataset))
    return f"Signed in as {first['username']}: sees {dataset_name!r} with {n} records in {first['workspace']!r}."


def main(argv: list[str] | None = None) -> int:
    """The command line: prepare the class, print what happened (never a password); 2 on an AnnotationError."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--students", type=int, help="create student01 .. studentNN")
    who.add_argument("--roster", type=pathlib.Path, help="CSV with a username column (first_name, last_name, group)")
    parser.add_argument("--passwords", type=pathlib.Path, required=True,
                        help="the instructor's CSV of usernames and passwords (appended to, never overwritten)")
    parser.add_argument("--groups", type=int, default=0, help="one workspace and dataset per group (default 0: "
                        "one shared by everyone)")
    parser.add_argument("--workspace", default=DEFAULT_WORKSPACE)
    parser.add_argument("--task", default=DEFAULT_TASK, help=f"the task notebook 6 reviews: a built-in name or a task "
                        f"file (default {DEFAULT_TASK})")
    parser.add_argument("--dataset", default=None, help="keep notebook 6's DATASET_NAME (the default: "
                        "<task>-label-review)")
    parser.add_argument("--issues", type=pathlib.Path, default=None,
                        help="notebook 5's examples file (default: utils.label_issues_path(task))")
    parser.add_argument("--n-review", type=int, default=60, help="records per dataset (notebook 6's N_REVIEW on a GPU)")
    parser.add_argument("--min-submitted", type=int, default=3, help="answers each record collects before it is done")
    parser.add_argument("--role", default="annotator", choices=ROLES)
    parser.add_argument("--insecure", action="store_true", help="allow plain http to a server on another machine "
                        "(the passwords travel unencrypted: only on a network you trust)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    try:
        task = load_task(args.task)
        args.dataset = args.dataset or f"{task.name}-label-review"
        students = read_roster(args.roster) if args.roster else numbered_students(args.students)
        students = assign_groups(students, args.groups)
        issues = read_issues(args.issues or label_issues_path(task))
        credentials: ArgillaCredentials = argilla_credentials(ask=True)
        require_private_transport(credentials.api_url or "", args.insecure)  # the owner's key travels too
        client = connect(credentials)
        accounts, datasets = prepare_class(client, students, args.passwords, issues, workspace=args.workspace,
                                           dataset_name=args.dataset, n_review=args.n_review,
                                           min_submitted=args.min_submitted, role=args.role, task=task,
                                           insecure=args.insecure)
        check = check_login(client.api_url, args.passwords, args.dataset, insecure=args.insecure)
    except (AnnotationError, TaskError, DataError) as error:
        print(f"classroom: {error}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_colwidth", 90):
        print(accounts["account"].value_counts().to_string(), "\n")
        print(datasets.to_string(index=False), "\n")
    print(check)
    print(f"{len(accounts)} students ready in {time.perf_counter() - began:.1f} s. Passwords: {args.passwords} "
          "(hand each student their row; keep the file private).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
