"""utils/data_quality.py: out-of-sample probabilities, the label-issues table, the file for notebook 6."""

import cleanlab.filter
import cleanlab.rank
import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import utils
from utils import data_quality
from utils.data import DataError

matplotlib.use("Agg")

CLASSES = ["north", "east", "west"]


def blobs(n_per_class=40, seed=0):
    """Three well-separated clusters in 5 dimensions: class k sits around 8 * e_k."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (n_per_class, 5)) + 8 * np.eye(5)[k] for k in range(3)])
    y = np.repeat(np.arange(3), n_per_class)
    return X, y


def flipped(y, seed=1, per_class=2):
    """A copy of `y` with `per_class` labels of each class moved to the next class, and their rows."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.choice(np.flatnonzero(y == k), per_class, replace=False) for k in range(3)])
    noisy = y.copy()
    noisy[rows] = (y[rows] + 1) % 3
    return noisy, np.sort(rows)


def course_frame(n):
    return pd.DataFrame({
        "text_original": [f"quote {i}" for i in range(n)],
        "text_preceding": [f"before {i}" for i in range(n)],
        "text_following": ["" if i % 2 else f"after {i}" for i in range(n)],
        "text": [f"before {i} The quote: \"quote {i}\"" for i in range(n)],
        "label": [i % 3 for i in range(n)],
    })


# ---------------------------------------------------------------- out-of-sample probabilities


def test_probabilities_have_one_row_per_example_and_sum_to_one():
    X, y = blobs()
    probs = utils.out_of_sample_pred_probs(LogisticRegression(), X, y, class_names=CLASSES)
    assert probs.shape == (len(y), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-9)
    assert (probs.argmax(axis=1) == y).mean() > 0.95  # column k is class k


def test_probabilities_are_out_of_sample():
    # Random features and labels, more dimensions than rows, no duplicates: a model that saw the
    # labels fits them all; a model that did not can only guess.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 200)), np.repeat(np.arange(3), 20)
    model = LogisticRegression(C=100, max_iter=2000)
    in_sample = model.fit(X, y).predict_proba(X)
    assert (in_sample.argmax(axis=1) == y).all()
    probs = utils.out_of_sample_pred_probs(model, X, y, class_names=CLASSES, seed=0)
    assert (probs.argmax(axis=1) == y).mean() < 0.6
    assert probs[np.arange(len(y)), y].mean() < 0.5  # its own label is not leaked
    assert not hasattr(model, "coef_") or np.allclose(model.predict_proba(X), in_sample)  # model untouched


def test_same_seed_same_probabilities():
    X, y = blobs(seed=3)
    a = utils.out_of_sample_pred_probs(LogisticRegression(), X, y, seed=7, class_names=CLASSES)
    b = utils.out_of_sample_pred_probs(LogisticRegression(), X, y, seed=7, class_names=CLASSES)
    np.testing.assert_array_equal(a, b)


def test_folds_shrink_to_the_smallest_class_with_a_warning():
    X, y = blobs(n_per_class=10)
    X, y = X[y != 2][:], y[y != 2]
    X, y = np.vstack([X, 6 * np.eye(5)[2] + np.zeros((3, 5))]), np.concatenate([y, [2, 2, 2]])
    with pytest.warns(UserWarning, match="using 3 folds instead of 5"):
        probs = utils.out_of_sample_pred_probs(LogisticRegression(), X, y, class_names=CLASSES)
    assert probs.shape == (len(y), 3)


def test_a_class_with_one_example_is_a_clear_error():
    X, y = blobs(n_per_class=5)
    y = y.copy()
    y[y == 2] = 1
    y[0] = 2
    with pytest.raises(DataError, match=r"at least 2 examples of every class.*\{'west': 1\}"):
        utils.out_of_sample_pred_probs(LogisticRegression(), X, y, class_names=CLASSES)


def test_a_missing_class_is_named():
    X, y = blobs(n_per_class=5)
    with pytest.raises(DataError, match=r"\{'Military: Negative': 0\}"):
        utils.out_of_sample_pred_probs(LogisticRegression(), X[y > 0], y[y > 0])


def test_label_ids_outside_the_classes_and_mismatched_lengths():
    X, y = blobs(n_per_class=5)
    with pytest.raises(ValueError, match=r"labels \[3\] are not class ids"):
        utils.out_of_sample_pred_probs(LogisticRegression(), X, np.where(y == 2, 3, y), class_names=CLASSES)
    with pytest.raises(ValueError, match="features has 15 rows but labels has 14"):
        utils.out_of_sample_pred_probs(LogisticRegression(), X, y[:-1], class_names=CLASSES)


# ---------------------------------------------------------------- finding flipped labels


def test_flipped_labels_are_found_and_ranked_first():
    X, y = blobs()
    noisy, rows = flipped(y)
    probs = utils.out_of_sample_pred_probs(LogisticRegression(), X, noisy, class_names=CLASSES)
    is_issue = cleanlab.filter.find_label_issues(noisy, probs, n_jobs=1)
    quality = cleanlab.rank.get_label_quality_scores(noisy, probs)
    found = set(np.flatnonzero(is_issue))
    # Confident learning is cautious: it may leave a doubtful case unflagged, but flags no clean one here.
    assert found <= set(rows) and len(found) >= len(rows) - 1
    assert set(np.argsort(quality)[:len(rows)]) == set(rows)  # the ranking puts every flipped label first

    frame = course_frame(len(y)).assign(label=noisy)
    table = utils.label_issues_table(frame, probs, quality, is_issue, embeddings=X, class_names=CLASSES)
    assert len(table) == len(y) and table["label_quality"].is_monotonic_increasing
    top = table.head(len(rows))
    assert set(top.index) == set(rows)  # the index is the row in the frame
    assert (top["label_text"] == [CLASSES[k] for k in noisy[top.index]]).all()
    assert (top["suggested_label"] == [CLASSES[k] for k in y[top.index]]).all()  # the true class
    assert top["is_label_issue"].sum() == len(found)
    assert table.loc[top.index, "text_original"].tolist() == [f"quote {i}" for i in top.index]
    assert np.allclose(table.loc[5, "embedding"], X[5])
    assert (table["split"] == "train").all()


def test_table_checks_lengths():
    X, y = blobs(n_per_class=4)
    probs = np.full((len(y), 3), 1 / 3)
    with pytest.raises(ValueError, match="one value per example"):
        utils.label_issues_table(course_frame(len(y)), probs, np.ones(len(y) - 1), np.zeros(len(y), bool))


def test_plots_draw():
    quality, issue = np.linspace(0, 1, 30), np.arange(30) < 4
    assert utils.plot_label_quality(quality, issue).get_xlabel().startswith("label quality")
    assert len(utils.plot_confident_joint(np.array([[5, 1, 0], [2, 7, 0], [0, 0, 9]]), CLASSES).texts) == 9


# ---------------------------------------------------------------- is a difference luck?


def test_bootstrap_f1_matches_sklearn_and_separates_luck_from_a_real_gain():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    noisy_guess = np.where(rng.random(300) < 0.5, y, rng.integers(0, 3, 300))
    better = np.where(rng.random(300) < 0.9, y, rng.integers(0, 3, 300))
    table = utils.bootstrap_f1_differences(y, {"base": noisy_guess, "same": noisy_guess.copy(), "better": better},
                                           baseline="base", n_resamples=300, seed=1)
    for name, pred in [("base", noisy_guess), ("better", better)]:
        assert table.loc[name, "f1_macro"] == pytest.approx(utils.classification_metrics(y, pred)["f1_macro"])
    assert table.loc["same", ["difference", "95% interval: low", "95% interval: high"]].tolist() == [0, 0, 0]
    assert table.loc["same", "share of resamples better"] == 0
    assert 0 < table.loc["better", "95% interval: low"] < table.loc["better", "difference"]
    assert table.loc["better", "share of resamples better"] == 1


@pytest.mark.filterwarnings("ignore:A single label was found")  # sklearn, on the one-class resample
def test_bootstrap_f1_counts_only_classes_that_occur_like_sklearn():
    from utils.data_quality import _f1_macro_per_resample

    y, pred = np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0])  # class 2 never occurs
    rows = np.array([[0, 1, 2, 3, 4], [0, 0, 0, 0, 0], [2, 3, 4, 4, 1]])
    expected = [utils.classification_metrics(y[r], pred[r])["f1_macro"] for r in rows]
    np.testing.assert_allclose(_f1_macro_per_resample(y, pred, rows, 3), expected)


def test_bootstrap_f1_errors():
    with pytest.raises(KeyError, match="'base' is not among"):
        utils.bootstrap_f1_differences([0, 1], {"other": [0, 1]}, baseline="base")
    with pytest.raises(ValueError, match="one prediction per test row"):
        utils.bootstrap_f1_differences([0, 1], {"base": [0]}, baseline="base")


# ---------------------------------------------------------------- the file for notebook 6


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    return tmp_path


def issues_frame(n=4, dim=3):
    frame = course_frame(n).assign(label=[0, 1, 2, 0][:n])
    rng = np.random.default_rng(0)
    table = utils.label_issues_table(frame, rng.dirichlet([1, 1, 1], n), rng.random(n), np.arange(n) % 2 == 0,
                                     embeddings=rng.normal(size=(n, dim)).astype(np.float32))
    return table.assign(country_name="Northland")  # an extra column: not saved


def test_save_and_load_keep_columns_dtypes_and_embeddings(results):
    table = issues_frame()
    path = utils.save_label_issues(table)
    assert path == results / "label_issues.parquet" == utils.label_issues_path()
    loaded = utils.load_label_issues()
    assert list(loaded.columns) == data_quality.LABEL_ISSUE_COLUMNS
    expected = table[data_quality.LABEL_ISSUE_COLUMNS].reset_index(drop=True)
    pd.testing.assert_frame_equal(loaded.drop(columns="embedding"), expected.drop(columns="embedding"))
    assert all(isinstance(e, list) and all(type(v) is float for v in e) for e in loaded["embedding"])
    np.testing.assert_allclose(np.vstack(loaded["embedding"]), np.vstack(expected["embedding"]), rtol=1e-7)
    assert loaded["text_following"].tolist()[1] == ""  # empty context stays an empty string


def test_saving_again_replaces_and_empty_tables_round_trip(results):
    utils.save_label_issues(issues_frame())
    empty = issues_frame().iloc[:0]
    utils.save_label_issues(empty)
    loaded = utils.load_label_issues()
    assert loaded.empty and list(loaded.columns) == data_quality.LABEL_ISSUE_COLUMNS
    assert [p.name for p in results.iterdir()] == ["label_issues.parquet"]  # no temporary files left


def test_save_names_missing_columns(results):
    with pytest.raises(ValueError, match=r"\['embedding'\] are missing"):
        utils.save_label_issues(issues_frame().drop(columns="embedding"))


def test_load_without_a_file_points_to_notebook_5(results):
    with pytest.raises(FileNotFoundError, match="Run notebook 5 \\(5_data_quality_cleanlab.ipynb\\)"):
        utils.load_label_issues()
