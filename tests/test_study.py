"""`make study` (utils/study/): every part of the study folder on the built-in task and on the
example task in ci mode, the report in a real browser, the model card's YAML, replication,
resuming, the dry run, and the named errors for bad input. Tiny grids keep it quick: 3 sizes,
3 seeds, the fast approaches, and the encoder fine-tuned once at its tiniest setting.
"""

import json
import math
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from utils.study import curves
from utils.study.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROME_PATH", "/usr/bin/chromium")
EXAMPLE = str(ROOT / "data" / "example_task" / "task.json")
MILITARY = str(ROOT / "data" / "manifesto_military" / "task.json")
SMALL = ["--sizes", "12", "24", "48", "--seeds", "0", "1", "2", "--n-resamples", "200"]
TABLES = ["cells", "learning_curve", "fits", "back_test", "cost", "groups", "confusion", "per_class"]


# Whole studies (each runs every approach over a grid): the full tier, `make test-all`. The quick tier keeps
# the fit, the table comparison, the dry run, the bad-input errors and the make target.
FULL = pytest.mark.full


@pytest.fixture(scope="module")
def military(tmp_path_factory) -> pathlib.Path:
    """The built-in task with the cheap approaches (zero-shot NLI included)."""
    folder = tmp_path_factory.mktemp("study") / "military"
    assert main(["--task", MILITARY, "--output-dir", str(folder), *SMALL,
                 "--approaches", "tfidf", "embeddings", "nli-zero-shot"]) == 0
    return folder


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> pathlib.Path:
    """The 4-label example task, with the encoder fine-tuned at its tiniest setting (size 12, one step)."""
    folder = tmp_path_factory.mktemp("study") / "example"
    assert main(["--task", EXAMPLE, "--output-dir", str(folder), *SMALL, "--approaches", "tfidf", "embeddings",
                 "encoder", "--max-size-finetune", "12", "--min-steps", "1", "--max-length", "32"]) == 0
    return folder


def read(folder: pathlib.Path, table: str) -> pd.DataFrame:
    return pd.read_csv(folder / "tables" / f"{table}.csv")


@FULL
@pytest.mark.parametrize("which", ["military", "example"])
def test_study_writes_every_part(which, request):
    folder = request.getfixturevalue(which)
    for part in ["report.html", "report.md", "methods.md", "model_card/README.md", "plots/learning_curves.png",
                 "plots/cost.png", "plots/groups.png", "replication/task.json", "replication/data_files.json",
                 "replication/splits.json", "replication/versions.json", "replication/command.txt",
                 *[f"tables/{t}.csv" for t in TABLES]]:
        assert (folder / part).is_file() and (folder / part).stat().st_size > 0, part

    cells, curve = read(folder, "cells"), read(folder, "learning_curve")
    learned = curve[curve["n_train"] > 0]
    assert set(learned["n_train"]) <= {12, 24, 48} and (learned["seeds"] == 3).all()
    assert cells["f1_macro"].between(0, 1).all()
    assert ((curve["ci_low"] <= curve["f1_macro"] + 1e-9) & (curve["f1_macro"] <= curve["ci_high"] + 1e-9)).all()
    # The seeds are different training samples: the split indices differ between seeds of one size.
    splits = json.loads((folder / "replication" / "splits.json").read_text())
    assert splits["train"]["n=24 seed=0"] != splits["train"]["n=24 seed=1"]
    assert len(splits["train"]["n=48 seed=2"]) == 48 and len(set(splits["train"]["n=48 seed=2"])) == 48

    fits = read(folder, "fits").set_index("approach")
    assert fits.loc[["tfidf", "embeddings"], "a (plateau)"].between(0, 1).all()
    if which == "example":  # the encoder ran at one size only: no curve, and the table says so
        assert math.isnan(fits.loc["encoder", "a (plateau)"]) and fits.loc["encoder", "note"].startswith("one size")
    back = read(folder, "back_test").set_index("approach")
    assert back.loc["tfidf", "fitted on sizes"] == "12, 24" and back.loc["tfidf", "predicted size"] == 48
    assert math.isclose(back.loc["tfidf", "error (predicted - measured)"],
                        back.loc["tfidf", "predicted F1"] - back.loc["tfidf", "measured F1"], abs_tol=1e-9)
    cost = read(folder, "cost")
    assert list(cost.columns[:5]) == ["approach", "F1 now", "labels still needed", "annotation hours",
                                      "compute minutes (one model)"]
    finite = cost[np.isfinite(cost["labels still needed"])]
    assert np.allclose(finite["annotation hours"], finite["labels still needed"] * 20 / 3600)

    n_test = len(splits["test"])
    groups = read(folder, "groups")
    assert groups["test rows"].sum() == n_test and groups["warning"].str.contains("too few").all()  # tiny slices
    confusion = read(folder, "confusion").set_index("label")
    assert confusion.to_numpy().sum() == 3 * n_test  # three seeds' models, every test row each

    report = (folder / "report.md").read_text()
    for heading in ["Cost beside accuracy", "Learning curves", "How many labels", "Back-test", "Validity",
                    "Methods", "Replication"]:
        assert f"## {heading}" in report
    assert ("Beside the paper" in report) == (which == "military")
    methods = (folder / "methods.md").read_text()
    assert "seeds 0, 1, 2" in methods and "sizes 12, 24, 48" in methods and "{" not in methods
    assert "Back-test: fitted on sizes 12, 24 only" in methods


@FULL
def test_the_military_study_sets_the_papers_figures_beside_ours(military):
    paper = read(military, "paper")
    reference = pd.read_csv(ROOT / "data" / "paper_reference.csv")
    ours = reference[reference["approach"].isin(["classical (TF-IDF + logistic regression)", "BERT-NLI zero-shot"])]
    assert len(paper) == len(reference) and (paper["ours: how"] == "not run").sum() == len(reference) - len(ours)
    ran = paper[paper["ours: how"] != "not run"]
    assert sorted(ran["paper F1 macro"]) == sorted(ours["f1_macro"])
    zero = paper[paper["approach"] == "nli-zero-shot"].iloc[0]
    curve = read(military, "learning_curve").set_index("approach")
    assert zero["ours: how"] == "measured" and math.isclose(zero["ours"], curve.loc["nli-zero-shot", "f1_macro"])
    assert (paper.loc[paper["approach"] == "tfidf", "ours: how"] == "fitted curve (extrapolated)").all()


@FULL
def test_the_model_card_has_model_index_yaml(example):
    import yaml

    text = (example / "model_card" / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    result = meta["model-index"][0]["results"][0]
    f1 = next(m for m in result["metrics"] if m["type"] == "f1")
    cost = read(example, "cost").set_index("approach")
    chosen = cost["F1 now"].idxmax()
    assert meta["model-index"][0]["name"] == f"council-topics-{chosen}"
    assert math.isclose(f1["value"], cost.loc[chosen, "F1 now"], abs_tol=1e-4) and f1["args"]["average"] == "macro"
    assert result["dataset"]["split"] == "test" and "base_model" not in meta  # ci: a stand-in, no hub base model


@FULL
def test_the_encoder_ran_once_at_its_tiniest_setting(example):
    cells = read(example, "cells")
    encoder = cells[cells["approach"] == "encoder"]
    assert list(encoder["n_train"]) == [12, 12, 12]
    stored = json.loads((example / "cells" / "encoder" / "n12-seed0.json").read_text())
    assert stored["details"]["epochs"] == 1 and stored["details"]["max_length"] <= 32


@FULL
def test_report_html_opens_offline_in_the_browser(example):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"the report test needs {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    html = (example / "report.html").read_text()
    assert "src=\"plots/" not in html and "http://" not in html and "https://" not in html
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto((example / "report.html").as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("() => [...document.images].map(i => i.complete && i.naturalWidth > 100)")
        headings = page.locator("h2").all_inner_texts()
        cells = page.locator("table").first.locator("td").count()
        browser.close()
    assert images == [True, True, True]
    assert "Cost beside accuracy" in headings and "Methods" in headings
    assert cells >= 3 * 12 and errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


@FULL
def test_replicate_reproduces_the_tables(military, capsys):
    assert main(["--replicate", str(military)]) == 0
    assert "Reproduced: the" in capsys.readouterr().out
    again = military.with_name(military.name + "-replication")
    for table in TABLES + ["paper"]:
        a, b = read(military, table), read(again, table)
        pd.testing.assert_frame_equal(a.drop(columns=[c for c in a if "seconds" in c or "minutes" in c]),
                                      b.drop(columns=[c for c in b if "seconds" in c or "minutes" in c]))


def test_compare_tables_sees_equal_text_with_gaps_and_a_changed_number(tmp_path):
    from utils.study.replicate import compare_tables

    table = pd.DataFrame({"approach": ["tfidf", "nli"], "note": ["", "needs at least 2 smaller sizes"],
                          "f1_macro": [0.5, 0.25], "seconds": [1.0, 2.0]})
    for name, frame in [("a", table), ("b", table.assign(seconds=[9.0, 9.0])), ("c", table.assign(f1_macro=[0.5, 0.3]))]:
        (tmp_path / name / "tables").mkdir(parents=True)
        frame.to_csv(tmp_path / name / "tables" / "back_test.csv", index=False)
    assert compare_tables(tmp_path / "a", tmp_path / "b", 1e-9) == []  # timing columns do not count
    assert compare_tables(tmp_path / "a", tmp_path / "c", 1e-9) == [
        "back_test.csv, column 'f1_macro', row 1: 0.25 vs 0.3"]


@FULL
def test_replicate_refuses_changed_data(military, tmp_path, capsys):
    copy = tmp_path / "study"
    shutil.copytree(military, copy)
    files = json.loads((copy / "replication" / "data_files.json").read_text())
    files[0]["sha256"] = "0" * 64
    (copy / "replication" / "data_files.json").write_text(json.dumps(files))
    assert main(["--replicate", str(copy)]) == 2
    assert "changed" in capsys.readouterr().err


@FULL
def test_an_interrupted_study_resumes_where_it_stopped(tmp_path, monkeypatch, capsys):
    import utils.study.cli as cli

    folder, calls = tmp_path / "resume", []
    real = cli.run_cell

    def stop_after_two(cell, *args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(cell.name)
        return real(cell, *args)

    argv = ["--task", EXAMPLE, "--output-dir", str(folder), *SMALL, "--approaches", "tfidf"]
    monkeypatch.setattr(cli, "run_cell", stop_after_two)
    assert main(argv) == 130
    assert "run the same command again" in capsys.readouterr().err
    assert len(list((folder / "cells" / "tfidf").glob("*.json"))) == 2
    stored = {p.name: p.stat().st_mtime_ns for p in (folder / "cells" / "tfidf").glob("*.json")}
    calls.clear()
    monkeypatch.setattr(cli, "run_cell", lambda cell, *args: calls.append(cell.name) or real(cell, *args))
    assert main(argv) == 0
    assert len(calls) == 7 and "tfidf n=12 seed=0" not in calls  # only the cells not stored yet ran
    assert all((folder / "cells" / "tfidf" / name).stat().st_mtime_ns == t for name, t in stored.items())
    assert "2 cell(s) stored" in capsys.readouterr().out


def test_dry_run_prints_the_grid_and_time_and_writes_nothing(tmp_path, capsys):
    folder = tmp_path / "dry"
    assert main(["--task", EXAMPLE, "--output-dir", str(folder), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "sizes 12, 24, 48" in out and "seeds 0, 1, 2" in out and "31 cells in all" in out and "estimated" in out
    assert not folder.exists()


def _task(tmp_path: pathlib.Path, train: pd.DataFrame, **keys) -> str:
    train.to_csv(tmp_path / "train.csv", index=False)
    train.to_csv(tmp_path / "test.csv", index=False)
    task = {"name": "bad-input", "labels": ["a", "b"], "text_column": "text", "label_column": "label_text",
            "files": {"train": "train.csv", "test": "test.csv"}, **keys}
    (tmp_path / "task.json").write_text(json.dumps(task))
    return str(tmp_path / "task.json")


@pytest.mark.parametrize("case, expected", [
    ("label not in the data", "has label(s) with no example"),
    ("unknown label in the data", "does not know: ['c']"),
    ("group column missing", "The group column 'region' is not in the test file"),
    ("too few rows per label", "Too few rows for the smallest size per label"),
])
def test_bad_input_gets_a_named_error_and_its_fix(case, expected, tmp_path, capsys):
    rows = pd.DataFrame({"text": [f"sentence number {i}" for i in range(40)], "label_text": ["a", "b"] * 20})
    keys = {}
    if case == "label not in the data":
        rows["label_text"] = "a"
    elif case == "unknown label in the data":
        rows.loc[0, "label_text"] = "c"
    elif case == "group column missing":
        keys["group_column"] = "region"
    else:
        rows["label_text"] = ["a"] * 39 + ["b"]
    task = _task(tmp_path, rows, **keys)
    assert main(["--task", task, "--output-dir", str(tmp_path / "out"), "--approaches", "tfidf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    assert any(word in err for word in ("Fix", "fix", "Add", "add", "pass", "Use")), err


def test_power_law_fit_recovers_a_known_curve_and_inverts_it():
    sizes = np.repeat([50, 100, 200, 400, 800], 3)
    scores = curves.power_law(sizes, 0.8, 2.0, 0.6) + np.tile([-0.004, 0.0, 0.004], 5)
    a, b, c = curves.fit_power_law(sizes, scores)
    assert abs(a - 0.8) < 0.02 and abs(c - 0.6) < 0.1
    n = curves.labels_for((a, b, c), 0.75)
    assert abs(curves.power_law(n, a, b, c) - 0.75) < 1e-9
    assert curves.labels_for((a, b, c), 0.9) == math.inf  # above the plateau: never reached
    frame = pd.DataFrame({"approach": "x", "n_train": sizes, "seed": np.tile([0, 1, 2], 5), "f1_macro": scores})
    fits = curves.fit_table(frame, 0.79, have=800, seed=0).iloc[0]
    assert fits["extrapolated"] and fits["needed: low"] <= fits["labels needed"] <= fits["needed: high"]
    back = curves.back_test(frame).iloc[0]
    assert back["predicted size"] == 800 and abs(back["error (predicted - measured)"]) < 0.01


def test_make_study_passes_task_mode_and_replicate():
    dry = subprocess.run(["make", "-n", "study", "TASK=my/task.json", "MODE=ci", "STUDY_ARGS=--dry-run"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "COURSE_MODE=ci" in dry and "-m utils.study --task my/task.json --dry-run" in dry
    again = subprocess.run(["make", "-n", "study", "REPLICATE=results/study-x"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout
    assert "-m utils.study --replicate results/study-x" in again
