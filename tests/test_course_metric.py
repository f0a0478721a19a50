"""The course metric as an `evaluate` module in the repo (metrics/course_metric): offline, and the
same numbers as utils.classification_metrics, which the results log uses."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import utils

GUARD_DIR = utils.COURSE_METRIC_DIR.parent.parent / "tests" / "network_guard"


@pytest.fixture(scope="module")
def course_metric():
    evaluate = pytest.importorskip("evaluate")
    return evaluate.load(str(utils.COURSE_METRIC_DIR))


def test_hand_example(course_metric):
    scores = course_metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 0, 2])
    assert scores["accuracy"] == pytest.approx(0.75)
    # per class F1: 1.0 (class 0: 1 right of 2, precision 1, recall 1/2 -> 2/3), class 1: precision 1/2, recall 1 -> 2/3
    assert scores["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 1.0) / 3)


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_classification_metrics(course_metric, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=200)
    predictions = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 3, size=200))
    predictions[predictions == 2] = rng.integers(0, 2)  # a class predicted rarely or never: zero_division matters
    ours = course_metric.compute(predictions=predictions, references=labels)
    expected = utils.classification_metrics(labels, predictions)
    assert ours.keys() == expected.keys()
    for name in expected:
        assert ours[name] == pytest.approx(expected[name]), name


def test_no_examples_is_a_clear_error(course_metric):
    with pytest.raises(ValueError, match="No examples"):
        course_metric.compute(predictions=[], references=[])


def test_loads_without_the_network(tmp_path):
    """Loaded in a fresh process behind the tests' network guard: nothing is fetched from the Hub."""
    log = tmp_path / "guard.log"
    env = {**os.environ, "PYTHONPATH": str(GUARD_DIR), "COURSE_NETWORK_GUARD_LOG": str(log),
           "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    code = ("import evaluate\n"
            f"m = evaluate.load({str(utils.COURSE_METRIC_DIR)!r})\n"
            "print(m.compute(predictions=[1, 0], references=[1, 1])['accuracy'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("0.5")
    assert not log.exists(), log.read_text()
