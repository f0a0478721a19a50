"""The course agenda: minutes per block in the full day and in the 4-hour cut. The one source of truth.

The README's agenda table, the slides' two agenda slides, the instructor guide's schedules and each
notebook's "**In class:** about N minutes" line are derived from this file or checked against it
(tests/test_agenda.py). Change a number here, then:

    python -m utils.agenda            # print both schedules as Markdown tables
    python -m utils.agenda --check    # list every place that disagrees with this file
    python -m utils.agenda --sync     # rewrite those places (tables and minutes only)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import re
import sys
from dataclasses import dataclass

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DAYS = ("full", "cut")
DAY_TITLES = {"full": "the full day", "cut": "the 4-hour cut"}
# The 4-hour cut keeps the original course's format: one block from 10:00 to 14:00.
START = {"full": "09:00", "cut": "10:00"}


@dataclass(frozen=True)
class Block:
    """One block of the day. A block with 0 minutes in a day is not part of that day."""

    key: str
    title: str
    full: int
    cut: int
    notebook: str | None = None  # the notebook's file stem, e.g. "3_tune_bert"
    # Headings of the notebook that the cut leaves for after class (a test checks they exist).
    cut_skips: tuple[str, ...] = ()
    cut_note: str = ""  # how to teach the block in the cut, for the instructor guide
    is_break: bool = False

    def minutes(self, day: str) -> int:
        """Minutes of this block in `day` ("full" or "cut")."""
        _check_day(day)
        return self.full if day == "full" else self.cut


BLOCKS: tuple[Block, ...] = (
    Block("intro", "Introduction", 15, 10, cut_note="the course, the data set, open notebook 1"),
    Block("nb1", "The open-source toolkit", 30, 15, "1_open_source_toolkit",
          cut_skips=("Token classification: named entities", "Exercises")),
    Block("nb2", "Transfer learning and inside transformers", 45, 25, "2_inside_transformers",
          cut_skips=("When does the meaning appear?", "Exercises")),
    Block("break1", "Break", 15, 15, is_break=True),
    Block("nb3", "Fine-tuning BERT", 60, 40, "3_tune_bert",
          cut_skips=("5. How much labelled data do you need?", "Exercises"),
          cut_note="set LEARNING_CURVE_SIZES=[] and show the learning curve of your own pre-class run"),
    Block("nb4", "Fine-tuning BERT-NLI", 45, 30, "4_tune_bert_nli", cut_skips=("Exercises",)),
    Block("lunch", "Lunch", 45, 0, is_break=True),
    Block("nb5", "Data-centric AI: finding label errors with cleanlab", 35, 20, "5_data_quality_cleanlab",
          cut_skips=("Exercises",)),
    Block("nb6", "Data-centric AI: annotating with Argilla", 60, 15, "6_annotation_argilla",
          cut_skips=("7. Retrain with the reviewed labels", "Exercises"),
          cut_note="demonstrate the web page on the class server; each student submits five records"),
    Block("break2", "Break", 15, 0, is_break=True),
    Block("nb7", "Fine-tuning generative LLMs", 60, 40, "7_tune_generative_llm",
          cut_skips=("6. Save, reload and merge the adapter", "Exercises"),
          cut_note="start it before the break: it runs longest"),
    Block("risks", "Risks, your LLM project (group work), Q&A", 45, 30,
          cut_note="group exercise 1 only; exercise 2 as homework"),
)


def _check_day(day: str) -> bool:
    if day not in DAYS:
        raise ValueError(f"Unknown day {day!r}: use one of {', '.join(DAYS)}.")
    return True


@dataclass(frozen=True)
class Slot:
    """A block placed in a day: start and end as "HH:MM"."""

    start: str
    end: str
    block: Block
    minutes: int


def schedule(day: str) -> list[Slot]:
    """The blocks of `day` in order, with their start and end times."""
    _check_day(day)
    clock = dt.datetime.strptime(START[day], "%H:%M")
    slots = []
    for block in BLOCKS:
        minutes = block.minutes(day)
        if minutes == 0:
            continue
        end = clock + dt.timedelta(minutes=minutes)
        slots.append(Slot(clock.strftime("%H:%M"), end.strftime("%H:%M"), block, minutes))
        clock = end
    return slots


def teaching_minutes(day: str) -> int:
    """Minutes of teaching in `day`, breaks left out."""
    return sum(s.minutes for s in schedule(day) if not s.block.is_break)


def total_minutes(day: str) -> int:
    """Minutes from the start of `day` to its end, breaks included."""
    return sum(s.minutes for s in schedule(day))


def notebook_minutes(day: str = "full") -> dict[str, int]:
    """Minutes in class per notebook file stem, e.g. {"1_open_source_toolkit": 30, ...}."""
    return {s.block.notebook: s.minutes for s in schedule(day) if s.block.notebook}


def block(key: str) -> Block:
    """The block called `key` ("intro", "nb1", ..., "risks")."""
    for candidate in BLOCKS:
        if candidate.key == key:
            return candidate
    raise KeyError(f"No block {key!r}; the blocks are {[b.key for b in BLOCKS]}.")


def hours(minutes: int) -> str:
    """Minutes as "6 h 35 min" (or "4 h")."""
    h, m = divmod(minutes, 60)
    return f"{h} h {m} min" if m else f"{h} h"


def summary_sentence() -> str:
    """The README's line under the agenda table (a test checks the README has it, word for word)."""
    full, cut = schedule("full"), schedule("cut")
    intro, risks = block("intro"), block("risks")
    return (f"Plus {intro.full} minutes of introduction and {risks.full} of risks, group work and Q&A: "
            f"{hours(teaching_minutes('full'))} of teaching, {full[0].start}–{full[-1].end} with breaks. "
            f"The 4-hour cut runs {cut[0].start}–{cut[-1].end} ({hours(teaching_minutes('cut'))} of teaching).")


def markdown_table(day: str) -> str:
    """The schedule of `day` as a Markdown table: time, block, notebook, minutes."""
    rows = ["| Time | Block | Notebook | Minutes |", "|---|---|---|---|"]
    for slot in schedule(day):
        number = slot.block.notebook.split("_", 1)[0] if slot.block.notebook else ""
        title = f"*{slot.block.title}*" if slot.block.is_break else slot.block.title
        rows.append(f"| {slot.start}–{slot.end} | {title} | {number} | {slot.minutes} |")
    return "\n".join(rows)


def cut_table() -> str:
    """What the 4-hour cut leaves out, per block, as a Markdown table for the instructor guide."""
    rows = ["| Block | Full day | 4-hour cut | In the cut |", "|---|---|---|---|"]
    for b in BLOCKS:
        if b.is_break:
            continue
        how = [f"skip {', '.join(f'“{h}”' for h in b.cut_skips)} (after class)"] if b.cut_skips else []
        how += [b.cut_note] if b.cut_note else []
        rows.append(f"| {b.title} | {b.full} | {b.cut} | {'; '.join(how) or '—'} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- the places that must agree

IN_CLASS = re.compile(r"\*\*In class:\*\* about (\d+) minutes")
DECK_HEADINGS = {"full": "## Agenda: the full day", "cut": "## Agenda: the 4-hour cut"}
GUIDE_HEADINGS = {"full": "### The full day", "cut": "### The 4-hour cut", "skips": "### What the cut leaves out"}


def notebook_headings(cells: list[dict]) -> list[str]:
    """The text of every Markdown heading in a notebook's cells, without the leading #s."""
    found = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        found += [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    return found


def _notebook_path(stem: str) -> pathlib.Path:
    return REPO_ROOT / "notebooks" / f"{stem}.ipynb"


def check_notebook(stem: str, cells: list[dict]) -> list[str]:
    """Problems with one notebook: its "In class" minutes, and the headings the cut skips."""
    problems = []
    want = notebook_minutes("full")[stem]
    text = "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                     for c in cells if c["cell_type"] == "markdown")
    found = IN_CLASS.findall(text)
    if [int(m) for m in found] != [want]:
        problems.append(f"notebooks/{stem}.ipynb says '**In class:** about {', '.join(found) or '?'} minutes'; "
                        f"the agenda says {want}")
    headings = notebook_headings(cells)
    nb_block = next(b for b in BLOCKS if b.notebook == stem)
    for heading in nb_block.cut_skips:
        if heading not in headings:
            problems.append(f"the 4-hour cut skips the section {heading!r} of notebooks/{stem}.ipynb, which has no "
                            f"such heading: update cut_skips of block {nb_block.key!r} in utils/agenda.py")
    return problems


def readme_minutes(readme: str) -> dict[str, int]:
    """Notebook stem -> the "Minutes in class" column of the README's agenda table."""
    lines = readme.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("|") and "Minutes in class" in line), None)
    if header is None:
        raise ValueError("The README has no agenda table with a 'Minutes in class' column.")
    column = [c.strip() for c in lines[header].split("|")].index("Minutes in class")
    found = {}
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.split("|")]
        stem = re.search(r"`(\d_[a-z_]+)`", line)
        if stem:
            found[stem.group(1)] = int(cells[column])
    return found


def check_readme(readme: str) -> list[str]:
    """Problems with the README: its minutes column, and the summary line under the table."""
    problems = []
    got, want = readme_minutes(readme), notebook_minutes("full")
    if got != want:
        diff = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        problems.append(f"README agenda table: minutes (README, agenda) differ for {diff}")
    if summary_sentence() not in " ".join(readme.split()):
        problems.append(f"README lacks the agenda's summary line: {summary_sentence()!r}")
    return problems


def table_after(text: str, heading: str) -> str | None:
    """The first Markdown table after the line `heading`, or None when there is none."""
    lines = text.splitlines()
    if heading not in lines:
        return None
    rest = lines[lines.index(heading) + 1:]
    start = next((i for i, line in enumerate(rest) if line.startswith("|")), None)
    if start is None:
        return None
    end = next((i for i in range(start, len(rest)) if not rest[i].startswith("|")), len(rest))
    return "\n".join(rest[start:end])


def replace_table_after(text: str, heading: str, table: str) -> str:
    """`text` with the first Markdown table after `heading` replaced by `table`."""
    old = table_after(text, heading)
    if old is None:
        raise ValueError(f"No Markdown table after the heading {heading!r}: add the heading and a table under it.")
    before, after = text.split(heading, 1)
    return before + heading + after.replace(old, table, 1)


def _tables(headings: dict[str, str]) -> dict[str, str]:
    return {heading: cut_table() if key == "skips" else markdown_table(key) for key, heading in headings.items()}


def check_tables(text: str, headings: dict[str, str], where: str) -> list[str]:
    """Problems with the agenda tables of a Markdown file (the deck, the instructor guide)."""
    problems = []
    for heading, want in _tables(headings).items():
        got = table_after(text, heading)
        if got is None:
            problems.append(f"{where}: no table under the heading {heading!r}")
        elif got != want:
            problems.append(f"{where}: the table under {heading!r} differs from utils/agenda.py")
    return problems


def check_all() -> list[str]:
    """Every disagreement between this file and the README, deck, guide and notebooks."""
    problems = check_readme((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    problems += check_tables((REPO_ROOT / "slides" / "deck.md").read_text(encoding="utf-8"), DECK_HEADINGS,
                             "slides/deck.md")
    problems += check_tables((REPO_ROOT / "INSTRUCTORS.md").read_text(encoding="utf-8"), GUIDE_HEADINGS,
                             "INSTRUCTORS.md")
    for stem in notebook_minutes("full"):
        cells = json.loads(_notebook_path(stem).read_text(encoding="utf-8"))["cells"]
        problems += check_notebook(stem, cells)
    return problems


def sync_notebook(stem: str) -> bool:
    """Set the notebook's "In class" minutes to the agenda's; True when the file changed.

    Only that number changes; the file keeps the notebooks' JSON layout (indent 1, UTF-8, final newline).
    """
    path = _notebook_path(stem)
    nb = json.loads(path.read_text(encoding="utf-8"))
    want, changed = notebook_minutes("full")[stem], False
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        lines = cell["source"] if isinstance(cell["source"], list) else [cell["source"]]
        new = [IN_CLASS.sub(f"**In class:** about {want} minutes", line) for line in lines]
        if new != lines:
            cell["source"], changed = new if isinstance(cell["source"], list) else new[0], True
    if changed:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def sync_all() -> list[str]:
    """Rewrite the agenda tables, the README's minutes and the notebooks' minutes; the files changed."""
    changed = []
    for name, headings in (("slides/deck.md", DECK_HEADINGS), ("INSTRUCTORS.md", GUIDE_HEADINGS)):
        path = REPO_ROOT / name
        text = path.read_text(encoding="utf-8")
        new = text
        for heading, table in _tables(headings).items():
            new = replace_table_after(new, heading, table)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(name)
    readme_path = REPO_ROOT / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    new_readme = _sync_readme_minutes(readme)
    if new_readme != readme:
        readme_path.write_text(new_readme, encoding="utf-8")
        changed.append("README.md")
    changed += [f"notebooks/{stem}.ipynb" for stem in notebook_minutes("full") if sync_notebook(stem)]
    return changed


def _sync_readme_minutes(readme: str) -> str:
    """The README with its "Minutes in class" column set from the agenda (the summary line is left to you)."""
    lines = readme.splitlines(keepends=True)
    header = next(i for i, line in enumerate(lines) if line.startswith("|") and "Minutes in class" in line)
    column = [c.strip() for c in lines[header].split("|")].index("Minutes in class")
    want = notebook_minutes("full")
    for i in range(header + 2, len(lines)):
        if not lines[i].startswith("|"):
            break
        stem = re.search(r"`(\d_[a-z_]+)`", lines[i])
        if stem and stem.group(1) in want:
            cells = lines[i].split("|")
            cells[column] = f" {want[stem.group(1)]} "
            lines[i] = "|".join(cells)
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print both agendas, or --check / --sync the places derived from them; 1 when something disagrees."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="list the places that disagree with the agenda")
    group.add_argument("--sync", action="store_true", help="rewrite the tables and minutes that disagree")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_all()
        print("\n".join(problems) if problems else "Everything agrees with utils/agenda.py.")
        return 1 if problems else 0
    if args.sync:
        changed = sync_all()
        print("Rewrote: " + ", ".join(changed) if changed else "Nothing to rewrite.")
        left = check_all()
        if left:
            print("Still to fix by hand:\n" + "\n".join(left))
        return 1 if left else 0
    for day in DAYS:
        print(f"{DAY_TITLES[day].capitalize()} ({hours(teaching_minutes(day))} of teaching, "
              f"{hours(total_minutes(day))} in all)\n\n{markdown_table(day)}\n")
    print(f"What the cut leaves out\n\n{cut_table()}\n\n{summary_sentence()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
