"""utils/data.py: reading and checking course CSVs, sampling and text preparation.

Downloads are in test_download.py.
"""

import math

import pandas as pd
import pytest

import utils
from utils import data
from utils.data import DataError


def course_frame(labels, prefix="s"):
    """A frame in the course format, one row per label text."""
    n = len(labels)
    return pd.DataFrame({
        "label_text": labels,
        "text_original": [f"{prefix}{i} quote." for i in range(n)],
        "text_preceding": [f"{prefix}{i} before." for i in range(n)],
        "text_following": [f"{prefix}{i} after." for i in range(n)],
    })


def write_csv(tmp_path, frame, name="data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- read_course_csv


def test_read_recomputes_label_from_label_text(tmp_path):
    frame = course_frame(["Military: Negative", "Military: Positive", "Other", "Other"])
    frame.insert(0, "label", [9, 9, 0, "x"])  # wrong ids in the file are ignored
    df = data.read_course_csv(write_csv(tmp_path, frame))
    assert df["label"].tolist() == [0, 1, 2, 2]
    assert df["label"].dtype.kind == "i"
    assert [data.ID2LABEL[i] for i in df["label"]] == df["label_text"].tolist()


def test_read_keeps_empty_context_and_na_like_text_as_strings(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("label_text,text_original,text_preceding,text_following\n"
                    "Other,NA,,None\n", encoding="utf-8")
    row = data.read_course_csv(path).iloc[0]
    assert (row["text_original"], row["text_preceding"], row["text_following"]) == ("NA", "", "None")


def test_read_accepts_extra_columns_and_str_paths(tmp_path):
    frame = course_frame(["Other"]).assign(country_name="Northland")
    df = data.read_course_csv(str(write_csv(tmp_path, frame)))
    assert df["country_name"].tolist() == ["Northland"]


def test_missing_columns_are_named(tmp_path):
    frame = course_frame(["Other"]).drop(columns=["text_preceding", "text_following"])
    with pytest.raises(DataError) as excinfo:
        data.read_course_csv(write_csv(tmp_path, frame))
    message = str(excinfo.value)
    assert "['text_preceding', 'text_following']" in message
    assert f"Expected columns: {data.REQUIRED_COLUMNS}" in message
    assert "found: ['label_text', 'text_original']" in message


def test_unknown_label_is_named_with_the_known_labels(tmp_path):
    frame = course_frame(["Other", "Military: Neutral"])
    with pytest.raises(DataError) as excinfo:
        data.read_course_csv(write_csv(tmp_path, frame))
    message = str(excinfo.value)
    assert "['Military: Neutral']" in message
    assert f"Known labels: {data.LABELS}" in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        data.read_course_csv(path)


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(",".join(data.REQUIRED_COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="has a header but no rows"):
        data.read_course_csv(path)


def test_non_utf8_file_says_how_to_convert(tmp_path):
    path = tmp_path / "latin1.csv"
    text = "label_text,text_original,text_preceding,text_following\nOther,Défense européenne,,\n"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError) as excinfo:
        data.read_course_csv(path)
    assert "is not UTF-8" in str(excinfo.value) and "iconv -f latin1 -t utf-8" in str(excinfo.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No data file at .*nothing.csv"):
        data.read_course_csv(tmp_path / "nothing.csv")


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------- load_course_data (ci mode)


@pytest.mark.parametrize("split", ["train", "test"])
def test_ci_mode_reads_the_repo_slices(monkeypatch, split):
    monkeypatch.setenv("COURSE_MODE", "ci")
    monkeypatch.setenv("COURSE_DATA_URL", "http://127.0.0.1:9/unreachable/")  # ci mode never downloads
    df = utils.load_course_data(split)
    expected = data.read_course_csv(data.REPO_ROOT / "data" / "manifesto_military" / f"{split}.csv")
    pd.testing.assert_frame_equal(df, expected)
    assert set(df["label_text"]) == set(data.LABELS)
    assert set(df["label"]) == {0, 1, 2}
    assert set(data.REQUIRED_COLUMNS) <= set(df.columns)


def test_ci_slices_do_not_share_quotes(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    train, test = utils.load_course_data("train"), utils.load_course_data("test")
    assert not set(train["text_original"]) & set(test["text_original"])


def test_unknown_split(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\], not 'valid'"):
        utils.load_course_data("valid")


# ---------------------------------------------------------------- sample


@pytest.fixture
def labelled():
    """100 rows: 60 of label 2, 30 of label 1, 10 of label 0, in blocks."""
    frame = course_frame(["Other"] * 60 + ["Military: Positive"] * 30 + ["Military: Negative"] * 10)
    frame["label"] = frame["label_text"].map(data.LABEL2ID)
    return frame


def shares(frame):
    return frame["label"].value_counts(normalize=True).sort_index()


@pytest.mark.parametrize("n", [20, 50, 77])
def test_sample_keeps_label_proportions(labelled, n):
    picked = utils.sample(labelled, n, seed=1)
    assert len(picked) == n and picked.index.is_unique
    assert set(picked.index) <= set(labelled.index)
    pd.testing.assert_series_equal(shares(picked), shares(labelled), atol=1.5 / n, check_names=False)


def test_sample_is_seeded(labelled):
    first, again = utils.sample(labelled, 30, seed=3), utils.sample(labelled, 30, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert set(utils.sample(labelled, 30, seed=4).index) != set(first.index)


def test_sample_of_all_rows_is_a_shuffle(labelled):
    picked = utils.sample(labelled, len(labelled), seed=0)
    assert sorted(picked.index) == sorted(labelled.index)
    assert list(picked.index) != list(labelled.index)


@pytest.mark.parametrize("n", [99, 98])
def test_sample_of_nearly_all_rows(labelled, n):
    # Regression: stratifying left fewer rows out than there are labels, which sklearn refuses.
    picked = utils.sample(labelled, n, seed=0)
    assert len(picked) == n and picked.index.is_unique
    pd.testing.assert_frame_equal(picked, utils.sample(labelled, n, seed=0))


def test_sample_smaller_than_the_number_of_labels(labelled):
    picked = utils.sample(labelled, 2, seed=5)
    assert len(picked) == 2
    pd.testing.assert_frame_equal(picked, utils.sample(labelled, 2, seed=5))


def test_sample_larger_than_the_data(labelled):
    with pytest.raises(DataError, match="Asked for 101 rows but the data has only 100"):
        utils.sample(labelled, 101, seed=0)


@pytest.mark.parametrize("n", [0, -5, 2.5, 10.0, "10", True, None])
def test_sample_size_must_be_a_positive_int(labelled, n):
    with pytest.raises(DataError, match="positive whole number"):
        utils.sample(labelled, n, seed=0)


# ---------------------------------------------------------------- text preparation


def one_row(preceding, original, following):
    return pd.DataFrame({"text_preceding": [preceding], "text_original": [original],
                         "text_following": [following], "label_text": ["Other"]})


def test_text_with_context_marks_the_quote_between_its_neighbours():
    text = utils.text_with_context(one_row("Before it.", "  The sentence.  ", "After it."))
    assert text.tolist() == ['Before it. The quote: "The sentence." After it.']


@pytest.mark.parametrize("preceding, following, expected", [
    ("", "After.", 'The quote: "Q." After.'),
    ("Before.", "", 'Before. The quote: "Q."'),
    ("", "", 'The quote: "Q."'),
    ("   ", " ", 'The quote: "Q."'),
    (math.nan, "After.", 'The quote: "Q." After.'),
    (None, math.nan, 'The quote: "Q."'),
])
def test_text_with_context_leaves_empty_context_out(preceding, following, expected):
    text = utils.text_with_context(one_row(preceding, "Q.", following)).iloc[0]
    assert text == expected
    assert "  " not in text and text == text.strip() and "nan" not in text.lower()


def test_text_plain_is_the_stripped_quote():
    assert utils.text_plain(one_row("Before.", " Q. ", "After.")).tolist() == ["Q."]


def test_text_with_context_keeps_row_order_and_index():
    frame = course_frame(["Other", "Other", "Other"]).set_axis([10, 5, 7])
    text = utils.text_with_context(frame)
    assert list(text.index) == [10, 5, 7]
    assert text.tolist() == [f's{i} before. The quote: "s{i} quote." s{i} after.' for i in range(3)]


@pytest.mark.parametrize("context", [True, False])
def test_prepare_texts_adds_text_and_leaves_the_input_alone(context):
    frame = course_frame(["Other", "Military: Positive"])
    before = frame.copy()
    out = utils.prepare_texts(frame, context=context)
    pd.testing.assert_frame_equal(frame, before)
    assert "text" not in frame.columns
    expected = utils.text_with_context(frame) if context else utils.text_plain(frame)
    assert out["text"].tolist() == expected.tolist()
    pd.testing.assert_frame_equal(out.drop(columns="text"), before)
