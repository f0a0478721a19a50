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
    assert "the task 'manifesto-military' names" in message and "'before_column': 'text_preceding'" in message
    assert "found: ['label_text', 'text_original']" in message


def test_unknown_label_is_named_with_the_known_labels(tmp_path):
    frame = course_frame(["Other", "Military: Neutral"])
    with pytest.raises(DataError) as excinfo:
        data.read_course_csv(write_csv(tmp_path, frame))
    message = str(excinfo.value)
    assert "['Military: Neutral']" in message
    assert f"Known labels: {data.LABELS}" in message and "the task 'manifesto-military'" in message


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


def test_a_non_utf8_file_names_the_byte_and_line_where_it_stops_being_utf8(tmp_path):
    # pandas decodes in blocks and reports the offset inside its block ("at byte 7"), not in the file.
    rows = "".join(f"Other,Sentence number {i} about schools and roads.,,\n" for i in range(20))
    content = ("label_text,text_original,text_preceding,text_following\n" + rows).encode("utf-8")
    content += "Other,Défense européenne,,\n".encode("latin-1")
    path = tmp_path / "mixed.csv"
    path.write_bytes(content)
    offset = content.index(b"\xe9")
    assert offset > 600
    with pytest.raises(DataError, match=rf"not UTF-8 text: byte {offset} \(line 22\) is 0xe9"):
        data.read_course_csv(path)


def test_empty_or_missing_texts_are_refused_with_their_rows(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("label_text,text_original,text_preceding,text_following\n"
                    "Other,A text.,,\n"
                    'Other,"   ",,\n'  # only spaces
                    "Other,Another text.,,\n"
                    "Other\n"  # a row cut short: no text cell at all
                    "Other,,Before.,After.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"gaps\.csv has 3 row\(s\) without a text \(column 'text_original'\): rows "
                                        r"3, 5, 6 \(row 1 is the header\)\. Fill the texts in, or delete those rows"):
        data.read_course_csv(path)


def test_rows_with_labels_the_task_lacks_are_named(tmp_path):
    frame = course_frame(["Other", "", "Other", "Militray: Positive"])
    with pytest.raises(DataError, match=r"label\(s\) the task 'manifesto-military' does not know: \['', 'Militray: "
                                        r"Positive'\] \(rows 3, 5\)"):
        data.read_course_csv(write_csv(tmp_path, frame))


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


def test_a_file_that_does_not_parse_as_csv_is_a_data_error(tmp_path):
    # Regression: pandas' ParserError escaped uncaught, naming neither the file nor a fix.
    path = tmp_path / "garbled.csv"
    path.write_text("label_text,text_original,text_preceding,text_following\n"
                    "Other,one,,\nOther,two,,,,,,\n", encoding="utf-8")
    with pytest.raises(DataError) as excinfo:
        data.read_course_csv(path)
    message = str(excinfo.value)
    assert str(path) in message and "does not parse as CSV" in message and "line 3" in message
    assert "CSV UTF-8" in message


def test_a_web_page_is_named_as_such(tmp_path):
    path = tmp_path / "page.csv"
    path.write_text("<!DOCTYPE html>\n<html><body>Not found</body></html>\n", encoding="utf-8")
    with pytest.raises(DataError) as excinfo:
        data.read_course_csv(path)
    message = str(excinfo.value)
    assert "web page (HTML)" in message and "Not found" in message and "Rename your columns" not in message


# ---------------------------------------------------------------- course_splits

# Stand-ins for the real files, 400 and 300 rows, in the proportions of the real ones (roughly
# 60% Other, 25% positive, 15% negative), each quote unique.
FILE_SHARES = {"Other": 0.6, "Military: Positive": 0.25, "Military: Negative": 0.15}


def shaped_file(n, prefix):
    labels = [label for label, share in FILE_SHARES.items() for _ in range(round(n * share))]
    return course_frame(labels, prefix=prefix).sample(frac=1, random_state=0)  # labels not in blocks


@pytest.fixture
def course_files(monkeypatch, tmp_path):
    """cpu mode, with COURSE_DATA_URL pointing to a folder with a 400-row train and a 300-row test file."""
    folder = tmp_path / "files"
    folder.mkdir()
    shaped_file(400, "train").to_csv(folder / data.FILE_NAMES["train"], index=False)
    shaped_file(300, "test").to_csv(folder / data.FILE_NAMES["test"], index=False)
    monkeypatch.setenv("COURSE_MODE", "cpu")
    monkeypatch.setenv("COURSE_DATA_URL", folder.as_uri())
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def quotes(frame):
    return set(frame["text_original"])


def test_splits_have_the_sizes_and_never_overlap(course_files):
    splits = utils.course_splits(120, 90, seed=42, n_valid=60)
    assert list(splits) == ["train", "valid", "test"]
    assert {name: len(df) for name, df in splits.items()} == {"train": 120, "valid": 60, "test": 90}
    train, valid, test = (quotes(splits[name]) for name in ("train", "valid", "test"))
    assert len(train) == 120 and len(valid) == 60 and len(test) == 90  # no row twice within a split
    assert not train & valid and not (train | valid) & test
    assert all(q.startswith("train") for q in train | valid) and all(q.startswith("test") for q in test)
    for df in splits.values():
        assert list(df.index) == list(range(len(df)))
        assert df["text"].tolist() == utils.text_with_context(df).tolist()
        assert (df["label"] == df["label_text"].map(data.LABEL2ID)).all()


def test_same_seed_same_rows_in_every_notebook(course_files):
    # Notebooks 3, 4 and 7 ask for the same split; 5 and 6 for the same train and test rows
    # without a validation set; the exercise of notebook 3 for the same rows without context.
    first = utils.course_splits(120, 90, seed=42, n_valid=60)
    again = utils.course_splits(120, 90, seed=42, n_valid=60)
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name])
    no_valid = utils.course_splits(120, 90, seed=42)
    assert list(no_valid) == ["train", "test"]
    pd.testing.assert_frame_equal(no_valid["train"], first["train"])
    pd.testing.assert_frame_equal(no_valid["test"], first["test"])
    bigger_train = utils.course_splits(200, 90, seed=42, n_valid=60)
    pd.testing.assert_frame_equal(bigger_train["test"], first["test"])  # the test rows never depend on N_TRAIN
    plain = utils.course_splits(120, 90, seed=42, n_valid=60, context=False)
    for name in first:
        pd.testing.assert_frame_equal(plain[name].drop(columns="text"), first[name].drop(columns="text"))
        assert plain[name]["text"].tolist() == utils.text_plain(first[name]).tolist()
    other_seed = utils.course_splits(120, 90, seed=7, n_valid=60)
    assert quotes(other_seed["train"]) != quotes(first["train"])
    assert quotes(other_seed["test"]) != quotes(first["test"])


def test_every_split_keeps_the_label_proportions(course_files):
    splits = utils.course_splits(120, 90, seed=3, n_valid=60)
    for name, df in splits.items():
        got = df["label_text"].value_counts(normalize=True)
        for label, share in FILE_SHARES.items():
            assert got[label] == pytest.approx(share, abs=1.5 / len(df)), (name, label)


def test_the_whole_train_file_can_be_used(course_files):
    splits = utils.course_splits(340, 300, seed=1, n_valid=60)
    assert len(quotes(splits["train"]) | quotes(splits["valid"])) == 400
    assert len(splits["test"]) == 300


@pytest.mark.parametrize("sizes, message", [
    ({"n_train": 350, "n_valid": 60, "n_test": 90},
     r"N_TRAIN=350 \+ N_VALID=60 = 410 rows are asked of the train file of the task 'manifesto-military', "
     r"which has 400\. Lower N_TRAIN or N_VALID"),
    ({"n_train": 401, "n_test": 90}, r"N_TRAIN=401 \+ N_VALID=0 = 401 rows .* which has 400"),
    ({"n_train": 120, "n_valid": 60, "n_test": 301}, r"N_TEST=301 rows are asked of the test file of the task "
                                                     r"'manifesto-military', which has 300\. Use N_TEST <= 300"),
], ids=["train-and-valid", "train", "test"])
def test_sizes_the_files_cannot_supply_are_named(course_files, sizes, message):
    # Regression: N_TRAIN + N_VALID over the file's rows said "Asked for 60 rows but the data has only 50".
    with pytest.raises(DataError, match=message):
        utils.course_splits(seed=42, **sizes)


def test_ci_slices_supply_the_notebooks_ci_sizes(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "ci")
    splits = utils.course_splits(40, 30, seed=42, n_valid=10)
    assert {name: len(df) for name, df in splits.items()} == {"train": 40, "valid": 10, "test": 30}
    assert not quotes(splits["train"]) & quotes(splits["valid"])
