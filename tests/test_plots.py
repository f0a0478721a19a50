"""utils/plots.py: each plot draws what it should (Agg backend, figures closed after each test)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

import utils  # noqa: E402

ID2LABEL = {0: "Military: Negative", 1: "Military: Positive", 2: "Other"}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_label_distribution_bars_and_counts():
    labels = pd.Series(["Other"] * 5 + ["Military: Positive"] * 3 + ["Military: Negative"])
    ax = utils.plot_label_distribution(labels, title="Train")
    assert [bar.get_width() for bar in ax.patches] == [5, 3, 1]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Other", "Military: Positive", "Military: Negative"]
    assert [t.get_text() for t in ax.texts] == ["5", "3", "1"]
    assert ax.yaxis_inverted()  # the largest bar on top
    assert ax.get_title() == "Train"


def test_label_distribution_of_numeric_labels():
    ax = utils.plot_label_distribution(pd.Series([2, 2, 0]))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2", "0"]
    assert [t.get_text() for t in ax.texts] == ["2", "1"]


def test_confusion_matrix_cells_match_sklearn():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 1]
    y_pred = [0, 1, 0, 1, 2, 2, 2, 0, 2, 1]
    ax = utils.plot_confusion_matrix(y_true, y_pred, ID2LABEL, title="CM")
    cells = np.array([int(t.get_text()) for t in ax.texts]).reshape(3, 3)
    np.testing.assert_array_equal(cells, confusion_matrix(y_true, y_pred, labels=[0, 1, 2]))
    assert [t.get_text() for t in ax.get_xticklabels()] == list(ID2LABEL.values())
    assert [t.get_text() for t in ax.get_yticklabels()] == list(ID2LABEL.values())
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("Predicted label", "True label", "CM")


def test_confusion_matrix_keeps_a_label_never_seen():
    ax = utils.plot_confusion_matrix([0, 1, 1], [0, 1, 0], ID2LABEL)
    cells = np.array([int(t.get_text()) for t in ax.texts]).reshape(3, 3)
    np.testing.assert_array_equal(cells, [[1, 0, 0], [1, 1, 0], [0, 0, 0]])


LOG_HISTORY = [
    {"loss": 1.2, "step": 10, "epoch": 0.5},
    {"loss": 0.9, "step": 20, "epoch": 1.0},
    {"eval_loss": 1.0, "eval_f1_macro": 0.5, "step": 20, "epoch": 1.0},
    {"loss": 0.6, "step": 30, "epoch": 1.5},
    {"eval_loss": 0.8, "step": 40, "epoch": 2.0},
    {"train_runtime": 12.0, "step": 40, "epoch": 2.0},
]


def test_loss_plot_has_training_and_evaluation_lines():
    ax = utils.plot_loss(LOG_HISTORY)
    train, evals = ax.get_lines()
    assert (list(train.get_xdata()), list(train.get_ydata())) == ([10, 20, 30], [1.2, 0.9, 0.6])
    assert (list(evals.get_xdata()), list(evals.get_ydata())) == ([20, 40], [1.0, 0.8])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training loss", "evaluation loss"]


def test_loss_plot_with_only_training_loss():
    ax = utils.plot_loss([e for e in LOG_HISTORY if "eval_loss" not in e])
    assert len(ax.get_lines()) == 1 and ax.get_lines()[0].get_label() == "training loss"


@pytest.mark.parametrize("history", [[], [{"train_runtime": 1.0, "step": 5}]])
def test_loss_plot_without_losses_says_what_to_set(history):
    with pytest.raises(ValueError, match="logging_steps"):
        utils.plot_loss(history)


RESULTS = pd.DataFrame({
    "approach": ["fine-tuning", "fine-tuning", "fine-tuning", "nli", "nli", "nli"],
    "n_train": [1000, 100, 500, 100, 500, 1000],
    "f1_macro": [0.8, 0.4, 0.7, 0.6, 0.7, 0.75],
})


def test_learning_curve_one_line_per_approach_sorted_by_size():
    ax = utils.plot_learning_curve(RESULTS)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert sorted(lines) == ["fine-tuning", "nli"]
    assert list(lines["fine-tuning"].get_xdata()) == [100, 500, 1000]
    assert list(lines["fine-tuning"].get_ydata()) == [0.4, 0.7, 0.8]
    assert ax.get_xscale() == "log" and ax.get_ylim() == (0, 1)
    assert ax.get_ylabel() == "f1 macro" and len(ax.texts) == 0


def test_learning_curve_with_only_some_approaches():
    ax = utils.plot_learning_curve(RESULTS[RESULTS["approach"] == "nli"])
    assert [line.get_label() for line in ax.get_lines()] == ["nli"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["nli"]


def test_learning_curve_of_an_empty_log(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    empty = utils.latest_results(utils.read_results())
    ax = utils.plot_learning_curve(empty)
    assert len(ax.get_lines()) == 0 and ax.get_legend() is None
    assert [t.get_text() for t in ax.texts] == ["no results logged yet: run the notebooks first"]


def test_learning_curve_with_zero_shot_keeps_a_linear_axis():
    zero_shot = pd.DataFrame({"approach": ["nli", "nli"], "n_train": [0, 100], "f1_macro": [0.5, 0.6]})
    assert utils.plot_learning_curve(zero_shot).get_xscale() == "linear"


def test_learning_curve_draws_the_reference_as_hollow_markers():
    reference = pd.DataFrame({"approach": ["BERT-NLI", "BERT-NLI"], "n_train": [100, 1000], "f1_macro": [0.6, 0.8]})
    ax = utils.plot_learning_curve(RESULTS, reference=reference)
    assert len(ax.get_lines()) == 2
    (points,) = ax.collections
    np.testing.assert_array_equal(points.get_offsets(), [[100, 0.6], [1000, 0.8]])
    assert [t.get_text() for t in ax.texts] == ["BERT-NLI (paper)", "BERT-NLI (paper)"]


def test_learning_curve_with_only_a_reference(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    reference = pd.DataFrame({"approach": ["BERT-NLI"], "n_train": [100], "f1_macro": [0.6]})
    ax = utils.plot_learning_curve(utils.read_results(), reference=reference)
    assert [t.get_text() for t in ax.texts] == ["BERT-NLI (paper)"]  # no "no results" text
    assert len(ax.collections) == 1


def test_each_plot_makes_its_own_figure():
    first = utils.plot_label_distribution(pd.Series(["Other"]))
    second = utils.plot_loss(LOG_HISTORY)
    assert first.figure is not second.figure and len(plt.get_fignums()) == 2
