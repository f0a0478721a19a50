"""The instructors' answer keys: one model answer per reflection question, and none in the notebooks.

instructors/answer_keys.md quotes each question; the quotes must match the notebooks' questions
(so a changed or added question needs its answer updated), and no sentence of an answer may
appear in a notebook, in the student versions made by utils.student_versions, or in the committed
student notebooks (notebooks/student/, when present).
"""

import json
import pathlib
import re

import nbformat
import pytest

from utils import student_versions

ROOT = pathlib.Path(__file__).resolve().parent.parent
KEY = ROOT / "instructors" / "answer_keys.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def normalise(text: str) -> str:
    """Lower case, Markdown emphasis and code marks dropped, whitespace collapsed."""
    return " ".join(re.sub(r"[*_`]", "", text).lower().split())


def reflection_questions(cells: list) -> list[str]:
    """The numbered questions under a notebook's "Reflection" / "Questions to reflect on" heading."""
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        heading = re.search(r"^#+ [^\n]*[Rr]eflect[^\n]*$", text, flags=re.MULTILINE)
        if heading:
            items = re.split(r"^\d+\.\s+", text[heading.end():], flags=re.MULTILINE)[1:]
            return [" ".join(item.split("\n\n")[0].split()) for item in items]
    return []


def answer_key() -> dict[str, list[tuple[str, str]]]:
    """Notebook stem -> [(question as quoted, answer)], from instructors/answer_keys.md."""
    parts = re.split(r"^## .*\(`([^`]+)`\)$", KEY.read_text(encoding="utf-8"), flags=re.MULTILINE)
    key = {}
    for stem, body in zip(parts[1::2], parts[2::2]):
        entries = []
        for entry in re.split(r"^### Question \d+$", body, flags=re.MULTILINE)[1:]:
            lines = entry.strip().splitlines()
            question = " ".join(line[2:] for line in lines if line.startswith("> "))
            answer = " ".join(line for line in lines if line and not line.startswith(">"))
            entries.append((" ".join(question.split()), answer))
        key[stem] = entries
    return key


def answer_sentences(answer: str) -> list[str]:
    """The answer's sentences and clauses of 8 words or more: long enough to be its own writing."""
    pieces = re.split(r"(?<=[.;:?!])\s+", normalise(answer))
    return [piece for piece in pieces if len(piece.split()) >= 8]


def leaked(answers: list[str], notebook: dict) -> list[str]:
    """Answer sentences found anywhere in a notebook's cells (markdown or code)."""
    text = normalise("\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                               for c in notebook["cells"]))
    return [s for answer in answers for s in answer_sentences(answer) if s in text]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_reflection_question_has_an_answer_that_quotes_it(path):
    questions = reflection_questions(json.loads(path.read_text(encoding="utf-8"))["cells"])
    assert questions, f"{path.name} has no reflection questions"
    entries = answer_key().get(path.stem, [])
    assert [q for q, _ in entries] == questions, (
        f"instructors/answer_keys.md is out of date for {path.name}: quote each of its questions and answer it")
    assert all(len(answer.split()) >= 25 for _, answer in entries)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_answer_is_in_the_notebook_or_its_student_versions(path):
    answers = [answer for _, answer in answer_key()[path.stem]]
    nb = nbformat.read(path, as_version=4)
    versions = {"notebook": nb, "student version": student_versions.student_version(nb, path.name)}
    committed = ROOT / "notebooks" / "student" / path.name
    if committed.exists():
        versions["committed student version"] = nbformat.read(committed, as_version=4)
    for name, version in versions.items():
        assert leaked(answers, version) == [], f"{path.name} ({name}) contains answer-key text"


def test_a_pasted_answer_would_be_caught():
    stem, entries = next(iter(answer_key().items()))
    answer = entries[0][1]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Some text.\n\n" + answer)])
    assert leaked([answer], nb)
    clean = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(entries[0][0])])
    assert leaked([answer], clean) == []  # the question itself is not an answer
