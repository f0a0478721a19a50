"""utils.classroom against the real Argilla test server: accounts, passwords CSV, shared dataset, reruns.

Like tests/test_annotation.py, the server is the one named by ARGILLA_API_URL / ARGILLA_API_KEY,
else one started from tests/argilla_server; without either the server tests are skipped.
"""

import json
import pathlib
import re
import stat
import uuid

import numpy as np
import pandas as pd
import pytest

import utils
from utils import classroom

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture()
def issues(tmp_path, monkeypatch) -> pd.DataFrame:
    """Notebook 5's examples file, written by utils.save_label_issues, read back by the command."""
    rng = np.random.default_rng(0)
    n = 6
    table = pd.DataFrame({
        "text_original": [f"Class quote {i} about the navy." for i in range(n)],
        "text_preceding": "", "text_following": "After.", "text": [f"text {i}" for i in range(n)],
        "label_text": [utils.LABELS[i % 3] for i in range(n)],
        "suggested_label": [utils.LABELS[(i + 1) % 3] for i in range(n)],
        "label_quality": np.linspace(0.01, 0.5, n), "is_label_issue": [i < 3 for i in range(n)], "split": "train",
        "embedding": [rng.normal(size=4).tolist() for _ in range(n)],
    })
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    return classroom.read_issues(utils.save_label_issues(table))


def roster(tmp_path, n: int) -> tuple[pathlib.Path, list[str]]:
    """A roster CSV with `n` usernames unique to this test run (the server may outlive it)."""
    tag = uuid.uuid4().hex[:6]
    names = [f"t{tag}-s{k}" for k in range(1, n + 1)]
    path = tmp_path / f"roster-{n}.csv"
    pd.DataFrame({"username": names, "first_name": [f"Student {k}" for k in range(1, n + 1)]}).to_csv(path, index=False)
    return path, names


# ---------------------------------------------------------------- without a server


def test_numbered_students_and_round_robin_groups():
    students = classroom.numbered_students(25)
    assert [s.username for s in students[:2]] == ["student01", "student02"] and students[-1].username == "student25"
    grouped = classroom.assign_groups(students[:5], 2)
    assert [s.group for s in grouped] == ["1", "2", "1", "2", "1"]
    assert classroom.workspace_of(grouped[1], "ws") == "ws-group-2"
    assert classroom.workspace_of(students[0], "ws") == "ws"
    with pytest.raises(utils.AnnotationError, match="positive whole number"):
        classroom.numbered_students(0)


@pytest.mark.parametrize("content, message", [
    ("name\nanna\n", "no 'username' column"),
    ("username\nanna\nanna\n", r"\['anna'\] occur more than once"),
    ("username\nanna smith\n", r"line 2: 'anna smith'"),
])
def test_bad_rosters_are_explained(tmp_path, content, message):
    path = tmp_path / "roster.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(utils.AnnotationError, match=message):
        classroom.read_roster(path)


def test_a_foreign_passwords_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "passwords.csv"
    path.write_text("name,secret\nx,y\n", encoding="utf-8")
    with pytest.raises(utils.AnnotationError, match="not a passwords file of this command"):
        classroom.read_passwords(path)
    assert path.read_text(encoding="utf-8") == "name,secret\nx,y\n"


def test_missing_or_wrong_issues_file_is_explained(tmp_path):
    with pytest.raises(utils.AnnotationError, match="Run notebook 5 once"):
        classroom.read_issues(tmp_path / "nothing.parquet")
    not_parquet = tmp_path / "issues.parquet"
    not_parquet.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(utils.AnnotationError, match="not notebook 5's examples file"):
        classroom.read_issues(not_parquet)


def test_the_default_dataset_is_the_one_notebook_6_uses():
    nb = json.loads((ROOT / "notebooks" / "6_annotation_argilla.ipynb").read_text(encoding="utf-8"))
    settings = next("".join(c["source"]) for c in nb["cells"] if "utils.settings(" in "".join(c["source"]))
    name = re.search(r'DATASET_NAME="([^"]+)"', settings).group(1)
    assert name.replace("{task}", utils.DEFAULT_TASK) == classroom.DEFAULT_DATASET  # as notebook 6 fills it in
    assert 'IF_EXISTS="reuse"' in settings  # so a student's run finds the class dataset instead of making one


def _passwords_file(tmp_path: pathlib.Path, mode: int) -> pathlib.Path:
    path = tmp_path / "passwords.csv"
    path.write_text(",".join(classroom.PASSWORD_COLUMNS) + "\nanna,a-secret,ws,Anna,\n", encoding="utf-8")
    path.chmod(mode)
    return path


def test_an_existing_passwords_file_that_others_can_read_is_made_private_and_said_so(tmp_path):
    path = _passwords_file(tmp_path, 0o644)  # e.g. copied, or written by hand: O_CREAT's 0600 never applied
    with pytest.warns(UserWarning, match=r"passwords\.csv could be read by others \(mode 0644\): it is now 0600"):
        rows = classroom.read_passwords(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and rows["anna"]["password"] == "a-secret"
    path.chmod(0o660)
    with pytest.warns(UserWarning, match=r"mode 0660"):
        classroom.append_password(path, {"username": "ben", "password": "b-secret", "workspace": "ws",
                                         "first_name": "Ben", "last_name": ""})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and list(classroom.read_passwords(path)) == ["anna", "ben"]


class _Owner:
    """Just enough of an argilla client for prepare_class to get as far as sending passwords."""

    def __init__(self, api_url: str):
        self.api_url = api_url
        self.me = type("Me", (), {"username": "owner", "role": "owner"})()
        self.users = []


@pytest.mark.parametrize("url", ["http://argilla.school.example:6900", "http://192.0.2.10", "HTTP://Argilla.Example"])
def test_passwords_never_travel_over_plain_http_to_another_machine(url, issues, tmp_path, monkeypatch, capsys):
    with pytest.raises(utils.AnnotationError, match=r"plain http.*https://.*--insecure"):
        classroom.prepare_class(_Owner(url), classroom.numbered_students(1), tmp_path / "pw.csv", issues)
    with pytest.raises(utils.AnnotationError, match=r"plain http"):
        classroom.login(url, "student01", "a-secret")
    assert not (tmp_path / "pw.csv").exists()

    def never(credentials, **kwargs):
        raise AssertionError("connected to a server over plain http")

    monkeypatch.setattr(classroom, "connect", never)
    monkeypatch.setenv("ARGILLA_API_URL", url)
    monkeypatch.setenv("ARGILLA_API_KEY", "owner-key")
    args = ["--students", "1", "--passwords", str(tmp_path / "pw.csv"), "--issues", str(utils.label_issues_path())]
    assert classroom.main(args) == 2
    assert "plain http" in capsys.readouterr().err


def test_plain_http_is_fine_on_this_machine_and_with_insecure(issues, tmp_path, monkeypatch, capsys):
    for url in ("http://127.0.0.1:6900", "http://localhost:6900/", "http://[::1]:6900", "https://x.hf.space"):
        classroom.require_private_transport(url, insecure=False)  # no error
    with pytest.warns(UserWarning, match=r"unencrypted to argilla\.school\.example"):
        classroom.require_private_transport("http://argilla.school.example:6900", insecure=True)

    def stop(credentials, **kwargs):
        raise utils.AnnotationError(f"stopped before connecting to {credentials.api_url}")

    monkeypatch.setattr(classroom, "connect", stop)
    monkeypatch.setenv("ARGILLA_API_URL", "http://argilla.school.example:6900")
    monkeypatch.setenv("ARGILLA_API_KEY", "owner-key")
    args = ["--students", "1", "--passwords", str(tmp_path / "pw.csv"), "--issues", str(utils.label_issues_path()),
            "--insecure"]
    with pytest.warns(UserWarning, match="unencrypted"):
        assert classroom.main(args) == 2
    assert "stopped before connecting to http://argilla.school.example:6900" in capsys.readouterr().err


# ---------------------------------------------------------------- against the real server


def test_three_students_sign_in_answer_and_the_owner_reads_it_back(owner, argilla, issues, tmp_path):
    path, names = roster(tmp_path, 3)
    passwords = tmp_path / "instructor" / "passwords.csv"
    workspace = f"class-{uuid.uuid4().hex[:6]}"
    accounts, datasets = classroom.prepare_class(owner, classroom.read_roster(path), passwords, issues,
                                                 workspace=workspace, n_review=4, min_submitted=2)
    assert accounts["account"].tolist() == ["created"] * 3 and set(accounts["role"]) == {"annotator"}
    assert datasets[["workspace", "records sent now", "records in all"]].values.tolist() == [[workspace, 4, 4]]
    saved = pd.read_csv(passwords, dtype=str)
    assert saved["username"].tolist() == names and saved["password"].str.len().min() >= 16
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    assert "password" not in accounts.columns and not any(p in accounts.to_string() for p in saved["password"])

    # A student signs in with the SDK and finds the class dataset as notebook 6 does (same name, reuse).
    student = classroom.login(argilla["url"], names[0], saved["password"][0])
    assert student.me.username == names[0] and str(student.me.role.value) == "annotator"
    assert [w.name for w in student.workspaces] == [workspace]
    dataset, message = utils.get_or_create_dataset(student, classroom.DEFAULT_DATASET, utils.review_settings(4))
    assert message.startswith("Reusing") and dataset.settings.distribution.min_submitted == 2
    # Notebook 6's next cell sends records: an annotator may not, and is told where to annotate instead.
    with pytest.raises(utils.AnnotationError, match=r"annotate in the web page, http.*/annotation-mode"):
        utils.log_new_records(dataset, utils.review_records(issues.head(2)))

    # The student answers the first record of their queue, through the endpoints the web page uses.
    from argilla._models import UserResponseModel

    queue = classroom.student_records(student, dataset)
    assert len(queue) == 4
    first = queue[0]
    student.api.records.create_record_response(first["id"], UserResponseModel(
        values={"stance": {"value": "Other"}}, status="submitted", user_id=student.me.id))

    # The owner reads it back with notebook 6's own function.
    as_owner = owner.datasets(classroom.DEFAULT_DATASET, workspace=workspace)
    answers = utils.submitted_responses(owner, as_owner)
    assert answers[["record_id", "annotator", "label"]].values.tolist() == [[first["external_id"], names[0], "Other"]]
    with pytest.raises(utils.AnnotationError, match="not read the answers from Python"):
        utils.submitted_responses(student, dataset)
    with pytest.raises(utils.AnnotationError, match="refused the username"):
        classroom.login(argilla["url"], names[1], "not-the-password")

    # Rerun: nothing new, the CSV byte for byte the same, the answer still there.
    before = passwords.read_bytes()
    accounts, datasets = classroom.prepare_class(owner, classroom.read_roster(path), passwords, issues,
                                                 workspace=workspace, n_review=4, min_submitted=2)
    assert accounts["account"].tolist() == ["kept"] * 3 and datasets["records sent now"].tolist() == [0]
    assert passwords.read_bytes() == before
    assert len(utils.submitted_responses(owner, as_owner)) == 1

    # A fourth student later: one account and one row more; the first three rows unchanged.
    more = tmp_path / "roster-more.csv"
    pd.DataFrame({"username": [*names, names[0] + "x"]}).to_csv(more, index=False)
    accounts, _ = classroom.prepare_class(owner, classroom.read_roster(more), passwords, issues,
                                          workspace=workspace, n_review=4, min_submitted=2)
    assert accounts["account"].tolist() == ["kept"] * 3 + ["created"]
    assert passwords.read_bytes().startswith(before) and len(pd.read_csv(passwords)) == 4


def test_groups_get_a_workspace_and_a_dataset_each(owner, issues, tmp_path):
    path, names = roster(tmp_path, 3)
    students = classroom.assign_groups(classroom.read_roster(path), 2)
    workspace = f"groups-{uuid.uuid4().hex[:6]}"
    accounts, datasets = classroom.prepare_class(owner, students, tmp_path / "pw.csv", issues, workspace=workspace,
                                                 n_review=3)
    assert accounts["workspace"].tolist() == [f"{workspace}-group-1", f"{workspace}-group-2", f"{workspace}-group-1"]
    assert sorted(datasets["workspace"]) == [f"{workspace}-group-1", f"{workspace}-group-2"]
    assert datasets["records in all"].tolist() == [3, 3]


def test_a_key_without_owner_rights_is_refused_with_the_reason(owner, argilla, issues, tmp_path):
    import argilla as rg

    tag = uuid.uuid4().hex[:6]
    for role in ("admin", "annotator"):
        rg.User(username=f"{role}-{tag}", first_name=role, role=role, password="a-password-123", client=owner).create()
        other = classroom.login(argilla["url"], f"{role}-{tag}", "a-password-123")
        with pytest.raises(utils.AnnotationError, match=f"role is '{role}'.*needs the owner's key"):
            classroom.prepare_class(other, classroom.numbered_students(1), tmp_path / f"{role}.csv", issues)
        assert not (tmp_path / f"{role}.csv").exists()  # nothing written before the check


def test_the_command_reports_a_wrong_key_or_url_and_never_prints_passwords(argilla, issues, tmp_path, monkeypatch,
                                                                           capsys):
    path, _ = roster(tmp_path, 2)
    passwords = tmp_path / "pw.csv"
    args = ["--roster", str(path), "--passwords", str(passwords), "--issues", str(utils.label_issues_path()),
            "--workspace", f"cli-{uuid.uuid4().hex[:6]}", "--n-review", "3"]
    monkeypatch.setenv("ARGILLA_API_URL", argilla["url"])
    monkeypatch.setenv("ARGILLA_API_KEY", "not-the-key")
    assert classroom.main(args) == 2
    assert "refused the API key" in capsys.readouterr().err
    monkeypatch.setenv("ARGILLA_API_URL", "http://127.0.0.1:9")
    assert classroom.main(args) == 2
    assert "No Argilla server answers at http://127.0.0.1:9" in capsys.readouterr().err
    assert not passwords.exists()

    monkeypatch.setenv("ARGILLA_API_URL", argilla["url"])
    monkeypatch.setenv("ARGILLA_API_KEY", argilla["api_key"])
    assert classroom.main(args) == 0
    out = capsys.readouterr().out
    assert "2 students ready" in out and "Signed in as" in out
    assert not any(p in out for p in pd.read_csv(passwords, dtype=str)["password"])
