"""Self-checks: utils.check's verdicts, the shape of a self-check cell, and the trial cell the notebook
runs use to require exactly one right answer per question."""

from __future__ import annotations

import contextlib
import io
import json

import nbformat
import pytest

import self_checks  # tests/self_checks.py
import utils


def run(*args, **kwargs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        verdict = utils.check(*args, **kwargs)
    return verdict, out.getvalue()


def test_right_wrong_and_unanswered():
    assert run("Yes ", "yes", "because")[0] is True
    verdict, text = run("no", "yes", "your F1 was 0.6")
    assert verdict is False and "Not quite" in text and "your F1 was 0.6" in text
    for unanswered in ("(choose)", "", None):
        verdict, text = run(unanswered, "yes", "why")
        assert verdict is None and "Not answered yet" in text


def test_numbers_within_a_tolerance_and_booleans():
    assert run(0.52, 0.5, "w", tolerance=0.05)[0] is True
    assert run(0.6, 0.5, "w", tolerance=0.05)[0] is False
    assert run(True, True, "w")[0] is True and run(1, True, "w")[0] is False


def test_an_answer_outside_the_options_is_a_typo_not_a_verdict():
    verdict, text = run("maybe", "yes", "w", options=["yes", "no"])
    assert verdict is None and "not one of the answers" in text


def test_an_expected_answer_outside_the_options_is_the_authors_bug():
    with pytest.raises(ValueError, match="not one of the options"):
        utils.check("yes", "perhaps", "w", options=["yes", "no"])


def cell(source: str, form: bool = True) -> nbformat.NotebookNode:
    metadata = {"tags": ["self-check"], **({"cellView": "form"} if form else {})}
    return nbformat.v4.new_code_cell(source, metadata=metadata)


GOOD = ('#@title Self-check 1: Is x above y?\n'
        'answer = "(choose)"  #@param ["(choose)", "yes", "no"]\n'
        'utils.check(answer, expected="yes" if x > y else "no", why=f"x={x}, y={y}")\n')


def test_a_well_formed_cell_and_what_is_wrong_with_others():
    assert self_checks.shape_problems(cell(GOOD)) == []
    assert self_checks.options(cell(GOOD)) == ["yes", "no"]
    assert any("cellView" in p for p in self_checks.shape_problems(cell(GOOD, form=False)))
    assert any("#@title" in p for p in self_checks.shape_problems(cell(GOOD.replace("Self-check 1:", "Quiz:"))))
    assert any("(choose)" in p for p in self_checks.shape_problems(cell(GOOD.replace('"(choose)", ', ""))))
    assert any("utils.check" in p for p in self_checks.shape_problems(cell(GOOD.replace("utils.check", "print"))))


def trials(source: str, namespace: dict) -> dict:
    nb = nbformat.v4.new_notebook(cells=[cell(source)])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(self_checks.trial_cell(nb), {"utils": utils, **namespace})
    line = next(line for line in out.getvalue().splitlines() if line.startswith(self_checks.TRIAL_MARK))
    return json.loads(line.removeprefix(self_checks.TRIAL_MARK))


def test_trials_find_exactly_one_right_answer():
    verdicts = trials(GOOD, {"x": 2, "y": 1})
    assert verdicts == {"Self-check 1: Is x above y?": {"yes": True, "no": False}}
    assert self_checks.verdict_problems(verdicts) == []


def test_trials_catch_a_question_no_answer_can_get_right():
    broken = GOOD.replace('expected="yes" if x > y else "no"', 'expected="true" if x > y else "false"')
    problems = self_checks.verdict_problems(trials(broken, {"x": 2, "y": 1}))
    assert problems and "0 answers judged right" in problems[0]


def test_trials_report_a_question_that_raises():
    problems = self_checks.verdict_problems(trials(GOOD, {"x": 2}))  # y is missing from the kernel
    assert problems and "NameError" in problems[0]
