"""utils/modes.py: run modes, by_mode, the settings cell, offline stand-ins and the header."""

import copy
import os
import pathlib
import pickle
import random

import pytest
import torch

import utils
from utils import modes

ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Each test starts without COURSE_* or CI variables and sets the ones it needs."""
    for name in list(os.environ):
        if name.startswith("COURSE_") or name == "CI":
            monkeypatch.delenv(name)


# ---------------------------------------------------------------- run_mode


@pytest.mark.parametrize("text, mode", [("gpu", "gpu"), ("cpu", "cpu"), ("ci", "ci"), (" CPU ", "cpu")])
def test_course_mode_forces_the_mode(monkeypatch, text, mode):
    monkeypatch.setenv("COURSE_MODE", text)
    monkeypatch.setenv("CI", "true")  # COURSE_MODE wins over CI
    assert modes.run_mode() == mode


@pytest.mark.parametrize("value", ["true", "1", "YES"])
def test_ci_variable_gives_ci_mode(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert modes.run_mode() == "ci"


@pytest.mark.parametrize("value", [None, "false", "0", ""])
def test_default_mode_follows_the_hardware(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv("CI", value)
    assert modes.run_mode() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_invalid_course_mode_names_the_valid_modes(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "tpu")
    with pytest.raises(ValueError) as excinfo:
        modes.run_mode()
    message = str(excinfo.value)
    assert "'tpu'" in message and "gpu, cpu, ci" in message


# ---------------------------------------------------------------- by_mode


def test_by_mode_picks_the_value_of_each_mode():
    setting = utils.by_mode(gpu=1000, cpu=300, ci=60)
    assert [setting.pick(m) for m in ("gpu", "cpu", "ci")] == [1000, 300, 60]


def test_by_mode_falls_back_ci_to_cpu_to_gpu():
    assert [utils.by_mode(gpu=1000).pick(m) for m in ("gpu", "cpu", "ci")] == [1000, 1000, 1000]
    assert [utils.by_mode(gpu=1000, cpu=300).pick(m) for m in ("gpu", "cpu", "ci")] == [1000, 300, 300]
    assert [utils.by_mode(gpu=1000, ci=60).pick(m) for m in ("gpu", "cpu", "ci")] == [1000, 1000, 60]


def test_by_mode_keeps_falsy_values():
    # Only None means "not given": 0 and False are real values.
    assert utils.by_mode(gpu=5, cpu=0).pick("ci") == 0
    assert utils.by_mode(gpu=True, ci=False).pick("ci") is False


def test_settings_resolve_by_mode_for_the_current_mode(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "cpu")
    s = utils.settings("nb", N_TRAIN=utils.by_mode(gpu=1000, cpu=300, ci=60), SEED=42)
    assert (s.mode, s.N_TRAIN, s.SEED, s.overridden) == ("cpu", 300, 42, [])


# ---------------------------------------------------------------- environment overrides


@pytest.mark.parametrize("default, text, expected", [
    (10, "25", 25),
    (10, " 7 ", 7),
    (0.5, "0.25", 0.25),
    (0.5, "3", 3.0),
    (True, "false", False),
    (True, "0", False),
    (False, "YES", True),
    (False, "1", True),
    ("a", "hello world", "hello world"),
    (["x", "y"], "a, b,,c", ["a", "b", "c"]),
    ([1, 2], "3,4", [3, 4]),
    ([0.1], "0.5, 1", [0.5, 1.0]),
    ([], "p,q", ["p", "q"]),
])
def test_environment_overrides_are_cast_to_the_defaults_type(monkeypatch, default, text, expected):
    monkeypatch.setenv("COURSE_MODE", "cpu")
    monkeypatch.setenv("COURSE_VALUE", text)
    s = utils.settings("nb", VALUE=default, OTHER=1)
    assert s.VALUE == expected and type(s.VALUE) is type(expected)
    assert s.overridden == ["VALUE"] and s.OTHER == 1


def test_override_applies_after_by_mode(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    monkeypatch.setenv("COURSE_N_TRAIN", "5")
    assert utils.settings("nb", N_TRAIN=utils.by_mode(gpu=1000, ci=60)).N_TRAIN == 5


@pytest.mark.parametrize("default, text", [(10, "ten"), (10, "2.5"), (0.5, "half"), (True, "maybe"),
                                           ([1, 2], "1,x")])
def test_bad_override_names_the_variable_and_the_default(monkeypatch, default, text):
    monkeypatch.setenv("COURSE_MODE", "cpu")
    monkeypatch.setenv("COURSE_N_TRAIN", text)
    with pytest.raises(ValueError) as excinfo:
        utils.settings("nb", N_TRAIN=default)
    message = str(excinfo.value)
    assert f"COURSE_N_TRAIN={text!r}" in message
    assert f"default {default!r}" in message


def test_lowercase_setting_name_is_rejected(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "cpu")
    with pytest.raises(ValueError, match="upper-case: write 'N_TRAIN'"):
        utils.settings("nb", n_train=10)


# ---------------------------------------------------------------- settings object


def test_unknown_setting_lists_the_settings(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "cpu")
    s = utils.settings("nb", N_TRAIN=10, SEED=1)
    with pytest.raises(AttributeError) as excinfo:
        s.UNKNOWN
    assert "'UNKNOWN'" in str(excinfo.value) and "N_TRAIN, SEED" in str(excinfo.value)
    assert not hasattr(s, "UNKNOWN")


def test_settings_survive_copy_and_pickle(monkeypatch):
    # Regression: __getattr__ recursed forever on a half-built copy (copy, pickle, multiprocessing).
    monkeypatch.setenv("COURSE_MODE", "cpu")
    s = utils.settings("nb", N_TRAIN=10, SEED=1)
    for other in (copy.copy(s), copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert (other.N_TRAIN, other.SEED, other.notebook) == (10, 1, "nb")


def test_ci_mode_replaces_model_settings_by_the_stand_in(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    s = utils.settings("nb", MODEL=ENCODER_ID, BASE_MODEL="microsoft/deberta-v3-base",
                       MODEL_SIZE="base", N_TRAIN=10)
    folder = pathlib.Path(s.MODEL)
    assert (folder / "config.json").is_file()
    assert folder == modes.encoder_stand_in()
    assert s.BASE_MODEL == s.MODEL  # every name ending in MODEL
    assert s.MODEL_SIZE == "base"  # ... but only those
    assert s.hub_id("MODEL") == ENCODER_ID
    assert s.hub_id("BASE_MODEL") == "microsoft/deberta-v3-base"
    assert s.hub_id("N_TRAIN") == 10


def test_cpu_mode_keeps_the_hub_id(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "cpu")
    s = utils.settings("nb", MODEL="some-org/not-in-model-kinds")
    assert s.MODEL == "some-org/not-in-model-kinds" and s.stand_ins == {}
    assert s.hub_id("MODEL") == "some-org/not-in-model-kinds"


def test_ci_mode_unknown_model_id_says_where_to_add_it(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    with pytest.raises(KeyError) as excinfo:
        utils.settings("nb", MODEL="some-org/not-in-model-kinds")
    message = excinfo.value.args[0]
    assert "'some-org/not-in-model-kinds'" in message and "MODEL_KINDS" in message
    assert "COURSE_MODE=cpu" in message


def test_ci_mode_model_override_is_also_replaced(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    monkeypatch.setenv("COURSE_MODEL", "BAAI/bge-small-en-v1.5")
    s = utils.settings("nb", MODEL="microsoft/deberta-v3-base")
    assert s.hub_id("MODEL") == "BAAI/bge-small-en-v1.5"
    assert (pathlib.Path(s.MODEL) / "config.json").is_file()


def test_stand_in_for_a_local_folder_is_the_folder(tmp_path):
    assert modes.stand_in_for(str(tmp_path)) == tmp_path


def test_llm_ids_use_the_converted_model_in_the_cache(monkeypatch, tmp_path):
    # A converted model already in the cache is used as is (no conversion, nothing loaded).
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    converted = tmp_path / "smollm2-135m-instruct"
    converted.mkdir()
    (converted / "config.json").write_text("{}")
    assert modes.stand_in_for("Qwen/Qwen2.5-0.5B-Instruct") == converted
    assert modes.stand_in_for(ENCODER_ID) == modes.encoder_stand_in()


def test_every_model_kind_is_encoder_or_llm():
    assert set(modes.MODEL_KINDS.values()) == {"encoder", "llm"}


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "a" / "b"))
    assert modes.cache_dir() == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()


# ---------------------------------------------------------------- names and the header


@pytest.mark.parametrize("text, name", [
    (str(modes.encoder_stand_in()), "all-MiniLM-L6-v2 (ci stand-in)"),
    ("/home/me/.cache/hands-on-transformers/smollm2-135m-instruct", "SmolLM2-135M-Instruct (ci stand-in)"),
    ("microsoft/deberta-v3-base", "microsoft/deberta-v3-base"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"),
])
def test_model_name(text, name):
    assert utils.model_name(text) == name
    assert utils.model_name(pathlib.Path(text)) == name


def test_header_table_shows_mode_seed_times_stand_ins_and_overrides(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    monkeypatch.setenv("COURSE_N_TRAIN", "5")
    s = utils.settings("3_fine_tuning", t4_minutes=10, cpu_minutes=25, MODEL=ENCODER_ID, N_TRAIN=100, SEED=42)
    rows = modes.header_table(s).iloc[:, 0]
    assert rows["notebook"] == "3_fine_tuning"
    assert rows["run mode"] == "ci"
    assert rows["seed"] == 42
    assert rows["device"].startswith(utils.device())
    assert rows["expected time on a T4 (gpu mode)"] == "about 10 min"
    assert rows["expected time on a laptop CPU (cpu mode)"] == "about 25 min"
    assert rows["stand-in for MODEL"] == f"{ENCODER_ID} -> all-MiniLM-L6-v2 (ci stand-in)"
    assert rows["set by environment"] == "N_TRAIN=5"
    assert rows["version: torch"] == torch.__version__


def test_header_table_without_seed_or_times(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "cpu")
    rows = modes.header_table(utils.settings("nb", N_TRAIN=1)).iloc[:, 0]
    assert rows["seed"] == "-" and rows["run mode"] == "cpu"
    assert not any(str(k).startswith(("expected time", "stand-in", "set by")) for k in rows.index)


def test_show_header_seeds_and_explains_stand_ins(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MODE", "ci")
    s = utils.settings("nb", MODEL=ENCODER_ID, SEED=7)
    table = utils.show_header(s)
    drawn = (random.random(), torch.rand(3))
    utils.seed_everything(7)
    assert drawn[0] == random.random() and torch.equal(drawn[1], torch.rand(3))
    assert "offline stand-in models" in capsys.readouterr().out
    assert table.iloc[:, 0]["run mode"] == "ci"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the warning given without a GPU")
@pytest.mark.optional(reason="checks the warning given without a GPU")
def test_show_header_in_gpu_mode_without_gpu_warns(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "gpu")
    with pytest.warns(UserWarning, match="Change runtime type"):
        utils.show_header(utils.settings("nb", N_TRAIN=1))
