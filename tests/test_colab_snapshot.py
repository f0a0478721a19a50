"""tests/colab_snapshot.py: a Colab pip freeze becomes the Colab test environment in one command."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import colab_snapshot  # tests/colab_snapshot.py

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_FREEZE = ROOT.parent / "shared" / "colab" / "pip-freeze.gpu.txt"
REQUIREMENTS = (ROOT / "requirements.txt").read_text(encoding="utf-8")


def freeze_of(versions: dict[str, str]) -> str:
    """A pip freeze as Colab writes one: comments first, one name==version a line, names as published."""
    return "# Do not modify this file directly\n" + "".join(f"{n}=={v}\n" for n, v in versions.items())


def test_freeze_becomes_pins_with_our_torch() -> None:
    versions = {name: f"1.{i}.0" for i, name in enumerate(colab_snapshot.COLAB_PINNED)}
    versions.update({"torch": "9.9.9+cu128", "Jinja2": "3.1.4", "scikit_learn": "1.6.1"})  # pip's own spellings
    del versions["scikit-learn"]
    text = colab_snapshot.environment_file(freeze_of(versions), "2027-01-02", REQUIREMENTS)
    lines = text.splitlines()
    assert colab_snapshot.torch_pin(REQUIREMENTS) in lines and "torch==9.9.9+cu128" not in lines
    assert "scikit-learn==1.6.1" in lines and "transformers==1.0.0" in lines
    assert not any(line.lower().startswith("jinja2") for line in lines)  # only the libraries the course leans on
    assert colab_snapshot.snapshot_date(text) == "2027-01-02" and "Colab has 9.9.9+cu128" in text
    assert "-r ../requirements-colab.txt" in lines


def test_a_freeze_without_the_libraries_is_refused_by_name() -> None:
    with pytest.raises(colab_snapshot.SnapshotError, match=r"no version for \['transformers'"):
        colab_snapshot.environment_file(freeze_of({"numpy": "2.1.3"}), "2027-01-02", REQUIREMENTS)


def test_committed_file_is_what_the_script_writes_and_the_readme_shows_its_date() -> None:
    committed = colab_snapshot.ENV_FILE.read_text(encoding="utf-8")
    pins = colab_snapshot.read_freeze(committed)
    colab_torch = committed.split("Colab has ", 1)[1].split(")", 1)[0]
    freeze = freeze_of({**pins, "torch": colab_torch})
    date = colab_snapshot.snapshot_date(committed)
    assert colab_snapshot.environment_file(freeze, date, REQUIREMENTS) == committed
    readme_dates = colab_snapshot.DATE_IN_README.findall(colab_snapshot.README.read_text(encoding="utf-8"))
    assert [d for _, d in readme_dates] == [date], "the README's Colab line must show the snapshot's date"


@pytest.mark.optional(reason="../shared/colab (Google's published freeze) is not part of a fresh clone")
def test_committed_file_matches_the_published_freeze() -> None:
    if not SHARED_FREEZE.exists():
        pytest.skip(f"no {SHARED_FREEZE}")
    committed = colab_snapshot.ENV_FILE.read_text(encoding="utf-8")
    expected = colab_snapshot.environment_file(SHARED_FREEZE.read_text(encoding="utf-8"),
                                               colab_snapshot.snapshot_date(committed), REQUIREMENTS)
    assert expected == committed


def test_bad_date_is_refused_without_writing(tmp_path: pathlib.Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text(freeze_of({name: "1.0" for name in colab_snapshot.COLAB_PINNED}), encoding="utf-8")
    before = colab_snapshot.ENV_FILE.read_bytes()
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "colab_snapshot.py"), str(freeze), "--date", "19/08/2026"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Invalid isoformat" in result.stderr
    assert colab_snapshot.ENV_FILE.read_bytes() == before
