"""The skip rules of tests/conftest.py, checked on a small test suite run in a pytest of its own.

Under CI=true a skipped test fails, except a `gpu` test without a CUDA GPU ("not run: no CUDA
GPU"), an `optional(reason=...)` test and a notebook's exercise stub; without CI, skips stay skips.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent

SUITE = '''
import pytest
import torch


def test_passes():
    pass


def test_skips_for_want_of_a_server():
    pytest.skip("no server here")


@pytest.mark.optional(reason="only meaningful on Apple silicon")
def test_optional_skip():
    pytest.skip("not Apple silicon")


@pytest.mark.gpu
def test_needs_a_gpu():
    assert torch.cuda.is_available()


@pytest.fixture
def broken_fixture():
    pytest.skip("the fixture could not start its browser")


def test_skipped_by_its_fixture(broken_fixture):
    pass
'''
MISSING_MODULE = 'import pytest\n\npytest.importorskip("a_module_nobody_installed")\n\n\ndef test_x():\n    pass\n'


def cell(source: str, tags: list[str]) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [], "source": source}


NOTEBOOK = {
    "cells": [cell("x = 1", []),
              cell('raise NotImplementedError("Exercise 1: write this")', ["exercise", "nbval-skip"]),
              cell("y = 2", ["nbval-skip"])],  # skipped without being an exercise: hides code from the tests
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 4,
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> pathlib.Path:
    """A folder with the course's conftest.py and pytest.ini (its markers) and the small suite."""
    folder = tmp_path_factory.mktemp("suite")
    (folder / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", folder / "tests" / "conftest.py")
    shutil.copy(ROOT / "pytest.ini", folder / "pytest.ini")
    (folder / "tests" / "test_sample.py").write_text(SUITE, encoding="utf-8")
    (folder / "tests" / "test_missing_module.py").write_text(MISSING_MODULE, encoding="utf-8")
    (folder / "tests" / "stub.ipynb").write_text(json.dumps(NOTEBOOK), encoding="utf-8")
    return folder


def run_suite(folder: pathlib.Path, ci: bool) -> tuple[dict[str, str], str]:
    """Run the suite; return each test's outcome (passed, failed, error, skipped) and the output."""
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": "true"} if ci else {})
    report = folder / f"report-{ci}.xml"
    # addopts emptied: the course's pytest.ini may add options the small suite does not need. A
    # collection error stops a session; here the other tests must run too, to be checked.
    done = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", "--continue-on-collection-errors", f"--junitxml={report}", "tests"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name")
        kinds = [child.tag for child in case if child.tag in {"failure", "error", "skipped"}]
        outcomes[name] = {"failure": "failed", "error": "error", "skipped": "skipped"}[kinds[0]] if kinds else "passed"
    return outcomes, done.stdout + done.stderr


def test_under_ci_only_the_allowed_skips_stay_skips(suite):
    outcomes, output = run_suite(suite, ci=True)
    gpu = "passed" if torch.cuda.is_available() else "skipped"
    assert outcomes == {
        "test_passes": "passed",
        "test_skips_for_want_of_a_server": "failed",
        "test_optional_skip": "skipped",
        "test_needs_a_gpu": gpu,
        "test_skipped_by_its_fixture": "error",  # failed in setup
        "tests.test_missing_module": "error",  # the whole module, at collection
        "Cell 0": "passed",
        "Cell 1": "skipped",  # the exercise stub (junit names a notebook's cells by number only)
        "Cell 2": "failed",
    }, output
    assert "skipped under CI=true, where every required test must run: no server here" in output
    assert "the fixture could not start its browser" in output and "a_module_nobody_installed" in output
    assert "@pytest.mark.optional(reason=" in output  # the way out, when a test is truly optional
    assert "skipped: tests/stub.ipynb::Cell 1: Skipped (allowed: exercise stub: the student writes this code)" in output
    if gpu == "skipped":
        assert "not run: no CUDA GPU: tests/test_sample.py::test_needs_a_gpu" in output


def test_without_ci_skips_stay_skips_and_are_listed_with_their_reason(suite):
    outcomes, output = run_suite(suite, ci=False)
    assert outcomes["test_skips_for_want_of_a_server"] == "skipped"
    assert outcomes["test_skipped_by_its_fixture"] == "skipped"
    assert outcomes["Cell 2"] == "skipped"
    assert "skipped: tests/test_sample.py::test_skips_for_want_of_a_server: no server here" in output
    if not torch.cuda.is_available():
        assert outcomes["test_needs_a_gpu"] == "skipped"
        assert "not run: no CUDA GPU: tests/test_sample.py::test_needs_a_gpu" in output
