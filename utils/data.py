"""The course dataset: Manifesto sentences labelled for their stance on the military.

Laurer et al. (2023), "Less Annotating, More Classifying", Political Analysis, prepared the data
from the Manifesto Project corpus; their replication repository publishes the cleaned train
(3970 rows) and test (9537 rows) files. In gpu/cpu mode they are downloaded once and cached; in
ci mode the tiny synthetic slices in data/ are used instead.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
import urllib.error
import urllib.request

import pandas as pd
from sklearn.model_selection import train_test_split

from .modes import REPO_ROOT, cache_dir, run_mode

DEFAULT_DATA_URL = "https://raw.githubusercontent.com/MoritzLaurer/less-annotating-with-bert-nli/master/data_clean/"
FILE_NAMES = {"train": "df_manifesto_military_train.csv", "test": "df_manifesto_military_test.csv"}
SLICE_DIR = REPO_ROOT / "data" / "manifesto_military"

# The ids used by the published files (label 0, 1, 2).
LABEL2ID = {"Military: Negative": 0, "Military: Positive": 1, "Other": 2}
ID2LABEL = {i: label for label, i in LABEL2ID.items()}
LABELS = list(LABEL2ID)
REQUIRED_COLUMNS = ["label_text", "text_original", "text_preceding", "text_following"]


class DataError(ValueError):
    """A data file or sample that the course code cannot use; the message says how to fix it."""


def data_url() -> str:
    """Base URL of the CSV files: COURSE_DATA_URL (an instructor's mirror) or the paper's repo."""
    url = os.environ.get("COURSE_DATA_URL", DEFAULT_DATA_URL)
    return url if url.endswith("/") else url + "/"


def download(url: str, target: pathlib.Path, timeout: float = 60) -> pathlib.Path:
    """Download `url` to `target` unless it is cached there already; return the path.

    The bytes go to a temporary file in the same folder first and are renamed at the end, so an
    interrupted download never leaves a broken file in the cache.
    """
    target = pathlib.Path(target)
    if target.exists() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as tmp, urllib.request.urlopen(url, timeout=timeout) as response:
            expected, received = response.headers.get("Content-Length"), 0
            while chunk := response.read(1 << 20):
                tmp.write(chunk)
                received += len(chunk)
            # urllib returns a short body without an error when the connection drops early.
            if expected is not None and received != int(expected):
                raise OSError(f"the connection closed after {received} of {expected} bytes")
        os.replace(tmp_name, target)
    except (urllib.error.URLError, OSError) as error:
        pathlib.Path(tmp_name).unlink(missing_ok=True)
        cause = getattr(error, "reason", None) or error
        code = f"HTTP {error.code} " if isinstance(error, urllib.error.HTTPError) else ""
        raise ConnectionError(
            f"Could not download {url}: {code}{cause}.\n"
            "Fixes: check the network; point COURSE_DATA_URL to a mirror that serves the same CSV "
            "files (e.g. one your instructor hosts); or run offline on the tiny slices with "
            "COURSE_MODE=ci."
        ) from error
    return target


def read_course_csv(path: str | pathlib.Path) -> pd.DataFrame:
    """Read and check a CSV in the course format; `label` is (re)computed from `label_text`.

    Works for your own data too: columns label_text, text_original, text_preceding and
    text_following, with label_text one of LABELS.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No data file at {path}. Check the path; for the course loader (COURSE_DATA_URL) the "
            f"files must be named {FILE_NAMES['train']} and {FILE_NAMES['test']}."
        )
    try:
        df = pd.read_csv(path, encoding="utf-8", keep_default_na=False, dtype=str)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} is not UTF-8 text ({error.reason} at byte {error.start}). Save it as UTF-8 "
            "(in a spreadsheet: 'CSV UTF-8'), or convert it, e.g. `iconv -f latin1 -t utf-8`."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: it needs a header row and at least one data row.") from None
    if df.empty:
        raise DataError(f"{path} has a header but no rows.")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {missing}. Expected columns: {REQUIRED_COLUMNS} "
            f"(found: {list(df.columns)}). Rename your columns to match."
        )
    unknown = sorted(set(df["label_text"]) - set(LABELS))
    if unknown:
        raise DataError(
            f"{path} has label(s) the course does not know: {unknown}. Known labels: {LABELS}. "
            "Map your labels to these, or change utils.data.LABEL2ID for a task of your own."
        )
    df["label"] = df["label_text"].map(LABEL2ID).astype(int)
    return df


def load_course_data(split: str) -> pd.DataFrame:
    """The course data set's "train" or "test" split (the synthetic slice in ci mode)."""
    if split not in FILE_NAMES:
        raise ValueError(f"split must be one of {list(FILE_NAMES)}, not {split!r}.")
    if run_mode() == "ci":
        return read_course_csv(SLICE_DIR / f"{split}.csv")
    url = data_url() + FILE_NAMES[split]
    if url.startswith("file://"):  # a folder on this machine: read it in place, no cache to go stale
        return read_course_csv(urllib.request.url2pathname(url.removeprefix("file://")))
    # One cache folder per base URL, so a mirror or your own data never mixes with another source.
    source_key = hashlib.sha1(data_url().encode()).hexdigest()[:12]
    return read_course_csv(download(url, cache_dir() / "data" / source_key / FILE_NAMES[split]))


def sample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of `n` rows that keeps the label proportions (stratified).

    `n` larger than the data is an error, not a silent cap: results must say what they used.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise DataError(f"Sample size must be a positive whole number, got {n!r}.")
    if n > len(df):
        raise DataError(f"Asked for {n} rows but the data has only {len(df)}. Use n <= {len(df)}.")
    if n == len(df):
        return df.sample(frac=1, random_state=seed)
    counts = df["label"].value_counts()
    if n < len(counts) or len(df) - n < len(counts) or counts.min() < 2:
        # Too small to stratify: a plain seeded sample, still reproducible.
        return df.sample(n=n, random_state=seed)
    picked, _ = train_test_split(df, train_size=n, stratify=df["label"], random_state=seed)
    return picked


def text_with_context(df: pd.DataFrame) -> pd.Series:
    """The paper's text preparation: preceding sentence, the quote marked as such, following one.

    The label is about the quote alone; its neighbours help the model read it (Laurer et al. 2023).
    Empty context is left out rather than shown as blank.
    """
    def clean(value: object) -> str:
        return "" if pd.isna(value) else str(value).strip()

    def one(row: pd.Series) -> str:
        parts = [clean(row["text_preceding"]), f'The quote: "{clean(row["text_original"])}"',
                 clean(row["text_following"])]
        return " ".join(part for part in parts if part)

    return df.apply(one, axis=1)


def text_plain(df: pd.DataFrame) -> pd.Series:
    """The quote alone, without its context."""
    return df["text_original"].astype(str).str.strip()


def prepare_texts(df: pd.DataFrame, context: bool = True) -> pd.DataFrame:
    """Copy of `df` with a `text` column: the quote with its context, or the quote alone."""
    out = df.copy()
    out["text"] = text_with_context(df) if context else text_plain(df)
    return out


def course_splits(n_train: int, n_test: int, seed: int, n_valid: int = 0,
                  context: bool = True) -> dict[str, pd.DataFrame]:
    """The course's shared split, identical in every notebook for the same settings.

    train: a stratified sample of `n_train` rows of the train file; valid: `n_valid` further rows
    of the train file (never in train), for choosing the best epoch; test: `n_test` rows of the
    test file, used only for the final numbers. Each gets a `text` column (see prepare_texts).
    """
    train_file, test_file = load_course_data("train"), load_course_data("test")
    train = sample(train_file, n_train, seed)
    splits = {"train": train}
    if n_valid:
        splits["valid"] = sample(train_file.drop(train.index), n_valid, seed)
    splits["test"] = sample(test_file, n_test, seed)
    return {name: prepare_texts(df, context).reset_index(drop=True) for name, df in splits.items()}
