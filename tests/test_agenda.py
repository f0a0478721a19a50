"""utils.agenda is the one source of the course's minutes: README, slides, guide and notebooks agree."""

import json
import pathlib

import pytest

from utils import agenda

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_cut_is_four_hours_from_ten_to_two():
    cut = agenda.schedule("cut")
    assert (cut[0].start, cut[-1].end) == ("10:00", "14:00")
    assert agenda.total_minutes("cut") == 240


def test_every_notebook_is_in_both_days_once_and_in_order():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    for day in agenda.DAYS:
        assert list(agenda.notebook_minutes(day)) == notebooks
        assert all(minutes > 0 for minutes in agenda.notebook_minutes(day).values())
    for block in agenda.BLOCKS:  # the cut shortens blocks; it never lengthens one
        assert block.cut <= block.full


def test_times_add_up():
    for day in agenda.DAYS:
        slots = agenda.schedule(day)
        assert all(a.end == b.start for a, b in zip(slots, slots[1:]))
        breaks = sum(s.minutes for s in slots if s.block.is_break)
        assert agenda.teaching_minutes(day) + breaks == agenda.total_minutes(day)


def test_the_readme_agrees():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert agenda.check_readme(readme) == []


def test_the_readme_check_catches_a_wrong_minute():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    wrong = readme.replace("| 45 | about 3 min | about 5 min |", "| 40 | about 3 min | about 5 min |")
    assert wrong != readme
    assert any("2_inside_transformers" in p for p in agenda.check_readme(wrong))


@pytest.mark.parametrize("name, headings", [("slides/deck.md", agenda.DECK_HEADINGS),
                                            ("INSTRUCTORS.md", agenda.GUIDE_HEADINGS)])
def test_the_agenda_tables_agree(name, headings):
    text = (ROOT / name).read_text(encoding="utf-8")
    assert agenda.check_tables(text, headings, name) == []


@pytest.mark.parametrize("stem", list(agenda.notebook_minutes("full")))
def test_each_notebook_states_its_minutes_and_has_the_sections_the_cut_skips(stem):
    cells = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))["cells"]
    assert agenda.check_notebook(stem, cells) == []


def test_the_notebook_check_catches_a_wrong_minute_and_a_missing_section():
    cells = [{"cell_type": "markdown", "source": ["**In class:** about 99 minutes.\n"]}]
    problems = agenda.check_notebook("3_tune_bert", cells)
    assert any("about 99 minutes" in p and "says 60" in p for p in problems)
    assert any("How much labelled data" in p for p in problems)


def test_sync_rewrites_only_the_minutes(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    original = (ROOT / "notebooks" / "2_inside_transformers.ipynb").read_text(encoding="utf-8")
    changed = original.replace("**In class:** about 45 minutes", "**In class:** about 40 minutes")
    assert changed != original
    (notebooks / "2_inside_transformers.ipynb").write_text(changed, encoding="utf-8")
    monkeypatch.setattr(agenda, "REPO_ROOT", tmp_path)
    assert agenda.sync_notebook("2_inside_transformers") is True
    assert (notebooks / "2_inside_transformers.ipynb").read_text(encoding="utf-8") == original  # byte for byte
    assert agenda.sync_notebook("2_inside_transformers") is False


def test_unknown_day_is_explained():
    with pytest.raises(ValueError, match="Unknown day 'half'"):
        agenda.schedule("half")
