"""tests/latest_check.py, the drift gate: what it installs, how it reads a run, what it records."""

from __future__ import annotations

import pathlib

import latest_check  # tests/latest_check.py

ROOT = pathlib.Path(__file__).resolve().parent.parent

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="4">
<testcase classname="tests.test_task" name="test_a"/>
<testcase classname="tests.test_notebook_runs" name="test_notebook_run[ci-3_tune_bert]">
  <failure message="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'eval_strategy'&#10;more">tb</failure>
</testcase>
<testcase classname="tests.test_gpu" name="test_b"><skipped message="no gpu"/></testcase>
<testcase classname="tests.test_task" name="test_c"/>
</testsuite></testsuites>
"""


def test_watched_packages_are_unpinned_and_everything_else_stays() -> None:
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    latest = latest_check.latest_requirements(requirements)
    pinned = latest_check.pins(latest)
    for name in latest_check.WATCHED:
        assert latest_check.normalise(name) not in pinned, f"{name} is still pinned in the latest environment"
        assert any(line.split("#")[0].strip() == latest_check.normalise(name) for line in latest.splitlines())
    original = latest_check.pins(requirements)
    watched = {latest_check.normalise(n) for n in latest_check.WATCHED}
    assert {n: v for n, v in original.items() if n not in watched} == pinned  # torch, numpy, ... as pinned
    assert pinned["torch"] == original["torch"]


def test_failures_are_read_from_junit(tmp_path: pathlib.Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT, encoding="utf-8")
    counts, failed = latest_check.failures(junit)
    assert counts == {"tests": 4, "failures": 1, "errors": 0, "skipped": 1}
    assert failed == [("tests/test_notebook_runs.py::test_notebook_run[ci-3_tune_bert]",
                       "TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'eval_strategy'")]


def test_record_names_the_suspects_of_each_failure() -> None:
    versions = {"transformers": "6.0.0", "datasets": "5.2.0", "torch": "2.13.0"}
    pinned = {"transformers": "5.24.0", "datasets": "5.2.0", "torch": "2.13.0"}
    text = latest_check.record(versions, pinned, {"tests": 4, "failures": 1, "errors": 0, "skipped": 1},
                               [("tests/x.py::test_y", "TypeError: a | b")], 12.3, 1)
    assert "| transformers | 5.24.0 | 6.0.0 |" in text
    assert "**Result:** 2 passed, 1 failed, 1 skipped in 12 s (pytest exit code 1)." in text
    assert "| `tests/x.py::test_y` | TypeError: a / b | transformers 6.0.0 |" in text  # datasets did not move


def test_committed_record_exists_and_the_readme_links_it() -> None:
    record = latest_check.RECORD.read_text(encoding="utf-8")
    assert record.startswith("# Last checked against the newest releases")
    assert "**Result:**" in record
    assert "tests/latest-check.md" in (ROOT / "README.md").read_text(encoding="utf-8")
