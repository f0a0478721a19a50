"""Every notebook's settings cell, in every run mode, without running the notebook.

The cell's `utils.settings(...)` call is read from the .ipynb file and its values evaluated per
mode (the `by_mode` fallbacks included), so a setting that only gpu mode uses is checked too,
although the tests only ever run ci mode: each hub id must have an offline stand-in
(utils.modes.MODEL_KINDS), and each sample size must fit the files it is drawn from.
"""

import ast
import json
import pathlib

import pytest

from utils import data, modes, task

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Rows of the published files of each built-in task (Laurer et al. 2023): what gpu and cpu mode sample from.
REAL_ROWS = {"manifesto-military": {"train": 3970, "test": 9537},
             "manifesto-protectionism": {"train": 2116, "test": 3762}}


def settings_call(path: pathlib.Path) -> ast.Call:
    """The utils.settings(...) call of the notebook's one settings cell."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    settings_cells = [s for s in sources if s.lstrip().startswith("# Settings")]
    assert len(settings_cells) == 1, f"{path.name}: {len(settings_cells)} cells start with '# Settings'"
    calls = [node for node in ast.walk(ast.parse(settings_cells[0]))
             if isinstance(node, ast.Call) and ast.unparse(node.func) == "utils.settings"]
    assert len(calls) == 1, f"{path.name}: the settings cell has {len(calls)} utils.settings(...) calls"
    return calls[0]


def evaluate(node: ast.expr, where: str) -> object:
    """A literal, or utils.by_mode(...) of literals, as the value the settings cell gives."""
    try:
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "utils.by_mode":
            args = [ast.literal_eval(a) for a in node.args]
            return modes.by_mode(*args, **{k.arg: ast.literal_eval(k.value) for k in node.keywords})
        return ast.literal_eval(node)
    except ValueError:
        raise AssertionError(f"{where}: {ast.unparse(node)!r} is neither a literal nor utils.by_mode(...) of "
                             "literals; the settings cell must give plain values") from None


def settings_in_mode(path: pathlib.Path, mode: str) -> dict:
    """The settings cell's values in `mode`, before environment overrides and stand-ins."""
    values = {}
    for keyword in settings_call(path).keywords:
        if keyword.arg in ("t4_minutes", "cpu_minutes"):
            continue
        value = evaluate(keyword.value, f"{path.name} {keyword.arg}")
        values[keyword.arg] = value.pick(mode) if isinstance(value, modes.ByMode) else value
    return values


def rows_available(mode: str, task_name: str = task.DEFAULT_TASK) -> dict[str, int]:
    if mode == "ci":  # the synthetic slices in data/
        built_in = task.load_task(task_name)
        return {split: len(data.read_course_csv(path, built_in)) for split, path in built_in.data_files("ci").items()}
    return REAL_ROWS[task_name]


CASES = [pytest.param(path, mode, id=f"{path.stem}-{mode}") for path in NOTEBOOKS for mode in modes.MODES]
SIZE_CASES = [pytest.param(path, mode, name, id=f"{path.stem}-{mode}-{name}")
              for path in NOTEBOOKS for mode in modes.MODES for name in task.BUILT_IN_TASKS]


def test_every_built_in_task_has_its_real_row_counts_here():
    assert set(REAL_ROWS) == set(task.BUILT_IN_TASKS)


def test_every_notebook_has_a_settings_cell_to_check():
    assert len(NOTEBOOKS) == 7
    assert all(settings_call(path).keywords for path in NOTEBOOKS)


@pytest.mark.parametrize("path, mode", CASES)
def test_every_hub_model_has_an_offline_stand_in(path, mode):
    values = settings_in_mode(path, mode)
    # The names settings() replaces by a stand-in in ci mode: each must be known in MODEL_KINDS.
    hub_ids = {name: value for name, value in values.items() if name.endswith("MODEL") and isinstance(value, str)}
    unknown = {name: value for name, value in hub_ids.items() if value not in modes.MODEL_KINDS}
    assert not unknown, f"{path.name} ({mode}): add these to utils.modes.MODEL_KINDS: {unknown}"


@pytest.mark.parametrize("path, mode, task_name", SIZE_CASES)
def test_every_sample_size_fits_the_files(path, mode, task_name):
    values = settings_in_mode(path, mode)
    rows = rows_available(mode, task_name)
    sizes = {name: values[name] for name in ("N_TRAIN", "N_VALID", "N_TEST") if name in values}
    for name, size in sizes.items():
        if size == data.ALL_ROWS:  # every row the file has: fits whatever the file
            values[name] = rows["train" if name == "N_TRAIN" else "test"] - (values.get("N_VALID", 0)
                                                                             if name == "N_TRAIN" else 0)
            continue
        assert isinstance(size, int) and not isinstance(size, bool) and size > 0, f"{path.name} ({mode}): {name}={size!r}"
    n_valid = values.get("N_VALID", 0)
    if "N_TRAIN" in values:
        assert values["N_TRAIN"] + n_valid <= rows["train"], (
            f"{path.name} ({mode}): N_TRAIN={values['N_TRAIN']} + N_VALID={n_valid} > {rows['train']} train rows")
    if "N_TEST" in values:
        assert values["N_TEST"] <= rows["test"], f"{path.name} ({mode}): N_TEST={values['N_TEST']} > {rows['test']}"
    # Notebook 3 skips, with a message, a learning-curve size the train file cannot supply, and ci
    # mode has one (60 + N_VALID > 60 rows), so that branch runs there. In gpu and cpu mode each must
    # fit the default task's file (another task's smaller file may skip the largest).
    for size in values.get("LEARNING_CURVE_SIZES", []) if mode != "ci" and task_name == task.DEFAULT_TASK else []:
        assert size + n_valid <= rows["train"], (
            f"{path.name} ({mode}): learning-curve size {size} + N_VALID={n_valid} > {rows['train']} train rows")


def test_the_checks_see_gpu_only_values():
    # Not vacuous: gpu mode has hub ids and sizes of its own that ci never uses.
    nb3 = next(p for p in NOTEBOOKS if p.name.startswith("3_"))
    gpu, ci = settings_in_mode(nb3, "gpu"), settings_in_mode(nb3, "ci")
    assert gpu["MODEL"] != settings_in_mode(nb3, "cpu")["MODEL"]
    assert gpu["N_TRAIN"] > ci["N_TRAIN"] and max(gpu["LEARNING_CURVE_SIZES"]) > rows_available("ci")["train"]


def test_an_unknown_hub_id_or_an_oversized_sample_would_be_caught(tmp_path):
    cell = ('# Settings\nS = utils.settings("x", MODEL=utils.by_mode(gpu="org/unknown-model", cpu="BAAI/bge-small-en-v1.5"),'
            ' N_TRAIN=utils.by_mode(gpu=3900, cpu=100), N_VALID=100, N_TEST=20)\n')
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": [cell], "metadata": {}}]}), encoding="utf-8")
    with pytest.raises(AssertionError, match="org/unknown-model"):
        test_every_hub_model_has_an_offline_stand_in(path, "gpu")
    test_every_hub_model_has_an_offline_stand_in(path, "cpu")  # cpu and ci use a known model
    with pytest.raises(AssertionError, match=r"N_TRAIN=3900 \+ N_VALID=100 > 3970"):
        test_every_sample_size_fits_the_files(path, "gpu", task.DEFAULT_TASK)
