"""The self-check cells of a notebook, and a cell that tries every answer of each one in the kernel.

A self-check cell (see utils/self_check.py) is tagged `self-check` and has this shape:

    #@title Self-check N: <question>
    answer = "(choose)"  #@param ["(choose)", "yes", "no"]
    utils.check(answer, expected=..., why=...)

`trial_cell` re-runs each one with every answer on offer, after the notebook has run, so a test
can require that exactly one answer is judged right, whatever the run's numbers were.
"""

from __future__ import annotations

import ast
import re

import nbformat

TRIAL_MARK = "SELF_CHECK_TRIALS "
ANSWER_LINE = re.compile(r'^answer = "\(choose\)"\s+#@param\s+(\[.*\])\s*$', re.MULTILINE)
TITLE_LINE = re.compile(r"^#@title Self-check (\d+): (.+\S)\s*$")


def self_check_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The notebook's cells tagged `self-check`, in order."""
    return [c for c in nb.cells if c.cell_type == "code" and "self-check" in c.get("metadata", {}).get("tags", [])]


def shape_problems(cell: nbformat.NotebookNode) -> list[str]:
    """What keeps `cell` from being a well-formed self-check (empty when it is one)."""
    lines = cell.source.splitlines()
    problems = []
    if not lines or not TITLE_LINE.match(lines[0]):
        problems.append(f"first line is not '#@title Self-check N: <question>': {lines[:1]}")
    match = ANSWER_LINE.search(cell.source)
    if not match:
        problems.append('no line `answer = "(choose)"  #@param [...]`')
    else:
        try:
            options = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            options = None
        if not isinstance(options, list) or options[:1] != ["(choose)"] or len(options) < 3:
            problems.append(f'the #@param list must start with "(choose)" and offer at least two answers: {match.group(1)}')
    if not re.search(r"^utils\.check\(answer,", cell.source, re.MULTILINE):
        problems.append("no statement `utils.check(answer, ...)` at the start of a line")
    if cell.get("metadata", {}).get("cellView") != "form":
        problems.append('metadata lacks "cellView": "form" (Colab shows the question as a form)')
    return problems


def options(cell: nbformat.NotebookNode) -> list[str]:
    """The answers on offer, without "(choose)"."""
    return ast.literal_eval(ANSWER_LINE.search(cell.source).group(1))[1:]


def trial_cell(nb: nbformat.NotebookNode) -> str:
    """A code cell that runs every self-check with each answer on offer and prints the verdicts as JSON:
    {title: {answer: True/False/None, or "error: ..."}}."""
    trials = []
    for cell in self_check_cells(nb):
        title = cell.source.splitlines()[0].removeprefix("#@title ").strip()
        for option in options(cell):
            source = ANSWER_LINE.sub(f"answer = {option!r}", cell.source)
            source = re.sub(r"^utils\.check\(", "_verdict = utils.check(", source, flags=re.MULTILINE)
            trials.append((title, option, source))
    return ("import contextlib as _contextlib, io as _io, json as _json\n"
            f"_trials = {trials!r}\n"
            "_verdicts = {}\n"
            "for _title, _option, _source in _trials:\n"
            "    _verdict = 'no verdict'\n"
            "    try:\n"
            "        with _contextlib.redirect_stdout(_io.StringIO()):\n"
            "            exec(compile(_source, _title, 'exec'), globals())\n"
            "    except Exception as _error:\n"
            "        _verdict = f'error: {type(_error).__name__}: {_error}'\n"
            "    _verdicts.setdefault(_title, {})[_option] = _verdict\n"
            f"print({TRIAL_MARK!r} + _json.dumps(_verdicts, default=str))")


def verdict_problems(verdicts: dict[str, dict[str, object]]) -> list[str]:
    """Self-checks that do not judge exactly one answer right (or that raised)."""
    problems = []
    for title, by_answer in verdicts.items():
        errors = {a: v for a, v in by_answer.items() if isinstance(v, str)}
        if errors:
            problems.append(f"{title}: {errors}")
            continue
        right = [a for a, v in by_answer.items() if v is True]
        if len(right) != 1:
            problems.append(f"{title}: {len(right)} answers judged right ({right}), expected exactly one: {by_answer}")
    return problems
