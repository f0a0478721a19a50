"""The parallel test workers keep together what must run together (tests/conftest.py, worker_group)."""

from __future__ import annotations

from conftest import worker_group
from test_notebook_runs import RUNS, INDEPENDENT

NODE = "tests/test_notebook_runs.py::test_notebook_run[{}]"


def test_a_chained_setting_is_one_group_and_each_ci_run_its_own() -> None:
    groups: dict[str, set[str]] = {}
    for run_id, setting, _, _ in RUNS:
        groups.setdefault(setting, set()).add(worker_group(NODE.format(run_id)))
    assert len(groups[INDEPENDENT]) == sum(1 for run in RUNS if run[1] == INDEPENDENT)  # every ci run on its own
    chained = {setting: g for setting, g in groups.items() if setting != INDEPENDENT}
    assert all(len(g) == 1 for g in chained.values()), chained  # gpu, cpu, ci-protectionism, ...: one group each
    assert len({next(iter(g)) for g in chained.values()}) == len(chained)  # and no two settings share one


def test_other_tests_are_grouped_by_file() -> None:
    assert worker_group("tests/test_task.py::test_a[x-1_y]") == "tests/test_task.py"
    assert worker_group("tests/test_task.py::test_b") == worker_group("tests/test_task.py::test_c")


def test_each_kill_and_resume_test_is_a_group_of_its_own() -> None:
    a = "tests/test_notebook_resume.py::test_a_killed_notebook_training_resumes_and_ends_as_an_uninterrupted_one[3_tune_bert-ci]"
    b = a.replace("3_tune_bert-ci", "7_tune_generative_llm-gpu")
    assert worker_group(a) != worker_group(b)
