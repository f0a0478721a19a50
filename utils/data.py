"""Reading a task's data: the CSV files, their checks, the samples and the text the models read.

Which files, columns and labels is the task's business (utils/task.py): for the default task,
Manifesto sentences labelled for their stance on the military, Laurer et al. (2023), "Less
Annotating, More Classifying", Political Analysis, published cleaned train (3970 rows) and test
(9537 rows) files. In gpu/cpu mode a built-in task's files are downloaded once and cached; in ci
mode its tiny synthetic slices in data/ are used instead. A task file of yours names its own files.

Whatever your CSV calls its columns, they are renamed to the course's names when read: the text
is `text_original`, the sentences around it `text_preceding` / `text_following` (empty when the
task has none), the label name `label_text`, and `label` its id (the label's position in the task).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
import urllib.error
import warnings
import urllib.parse
import urllib.request
from typing import Sequence

import pandas as pd
from sklearn.model_selection import train_test_split

from .modes import REPO_ROOT, cache_dir  # noqa: F401 (REPO_ROOT: for code that found it here)
from .task import COURSE_COLUMNS, Task, default_task, load_task

_DEFAULT = default_task()
DEFAULT_DATA_URL = _DEFAULT.data_url
# The default task's values, for code written before tasks were data (notebooks use TASK.labels etc.).
FILE_NAMES = dict(_DEFAULT.files)
SLICE_DIR = _DEFAULT.folder
LABEL2ID = _DEFAULT.label2id
ID2LABEL = _DEFAULT.id2label
LABELS = list(_DEFAULT.labels)
# The course's names for the columns every task has (see COURSE_COLUMNS in utils/task.py).
REQUIRED_COLUMNS = ["label_text", "text_original", "text_preceding", "text_following"]
ALL_ROWS = "all"  # a sample size meaning: every row of the file


class DataError(ValueError):
    """A data file or sample that the course code cannot use; the message says how to fix it."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file that is not there: a DataError (commands report it as one) and a FileNotFoundError."""


def _not_utf8(path: pathlib.Path) -> str:
    """Where `path` stops being UTF-8, in words: pandas decodes in blocks, so the offset in its error is
    within a block, not within the file."""
    content = path.read_bytes()
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as error:
        line = content.count(b"\n", 0, error.start) + 1
        return f"byte {error.start} (line {line}) is 0x{content[error.start]:02x}: {error.reason}"
    return "a byte that is not UTF-8"


def _rows(index: pd.Index, shown: int = 10) -> str:
    """Row positions as a spreadsheet numbers them (the header is row 1), the first `shown` of them."""
    numbers = [str(i + 2) for i in index[:shown]]
    return (("row " if len(index) == 1 else "rows ") + ", ".join(numbers)
            + (f" and {len(index) - shown} more" if len(index) > shown else ""))


def data_url(task: Task | None = None) -> str:
    """Base URL of a task's CSV files (default task: the paper's repository); COURSE_DATA_URL
    (an instructor's mirror) replaces it for every task that downloads its data."""
    url = os.environ.get("COURSE_DATA_URL") or (task or _DEFAULT).data_url or ""
    return url if url.endswith("/") else url + "/"


def _file_start(path: pathlib.Path, size: int = 160) -> str:
    """The first `size` characters of a file, to show what it holds in an error message."""
    with open(path, "rb") as f:
        return f.read(size).decode("utf-8", errors="replace")


def _looks_like_html(path: pathlib.Path) -> bool:
    # A course CSV starts with its header; a web page (an error or rate-limit page) with "<".
    return _file_start(path, 64).lstrip().startswith("<")


def _csv_problem(path: pathlib.Path, required_columns: Sequence[str] = REQUIRED_COLUMNS,
                header_only: bool = False) -> str | None:
    """What keeps `path` from being a course CSV, in a few words; None when it parses with the columns.

    `header_only` reads just the first line (a cheap check of a cached file).
    """
    if _looks_like_html(path):
        return "it is a web page (HTML), not a CSV file"
    try:
        df = pd.read_csv(path, encoding="utf-8", keep_default_na=False, dtype=str, nrows=0 if header_only else None)
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    except pd.errors.EmptyDataError:
        return "it is empty"
    except pd.errors.ParserError as error:
        return f"it does not parse as CSV ({str(error).strip().splitlines()[-1]})"
    missing = [c for c in required_columns if c not in df.columns]
    if missing:
        return f"it lacks the column(s) {missing} (found: {list(df.columns)[:10]})"
    if not header_only and df.empty:
        return "it has a header but no rows"
    return None


def download(url: str, target: pathlib.Path, timeout: float = 60,
             required_columns: Sequence[str] | None = REQUIRED_COLUMNS) -> pathlib.Path:
    """Download `url` to `target` unless it is cached there already; return the path.

    The bytes go to a temporary file in the same folder first and are renamed at the end, so an
    interrupted download never leaves a broken file in the cache. With `required_columns` (the
    default: the course's), only a CSV file with these columns is cached: an error or rate-limit
    page that a server sends with status 200 raises a DataError that says what came back. A
    cached file whose first line is not such a header (cached by an older version) is fetched again.
    """
    target = pathlib.Path(target)
    if target.exists() and target.stat().st_size > 0:
        if required_columns is None or _csv_problem(target, required_columns, header_only=True) is None:
            return target
        target.unlink()  # not a course CSV: never serve it again
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = pathlib.Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            content_type = response.headers.get_content_type()
            expected, received = response.headers.get("Content-Length"), 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                received += len(chunk)
            # urllib returns a short body without an error when the connection drops early.
            if expected is not None and received != int(expected):
                raise OSError(f"the connection closed after {received} of {expected} bytes")
        problem = _csv_problem(tmp, required_columns) if required_columns is not None else None
        if problem:
            raise DataError(
                f"{url} answered, but not with the course's CSV file: {problem}. It sent {content_type} "
                f"({received} bytes) starting with: {_file_start(tmp)!r}. Nothing was cached.\n"
                "Fixes: an error or rate-limit page goes away after a while: run the cell again in a few "
                "minutes; check that COURSE_DATA_URL is the folder of the raw CSV files (on GitHub a "
                "raw.githubusercontent.com address, not a github.com page); or run offline on the tiny "
                "slices with COURSE_MODE=ci."
            )
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as error:
        cause = getattr(error, "reason", None) or error
        code = f"HTTP {error.code} " if isinstance(error, urllib.error.HTTPError) else ""
        if isinstance(cause, TimeoutError):  # socket.timeout: connected, but no answer in time
            cause = f"no answer within {timeout:g} s (timed out)"
        raise ConnectionError(
            f"Could not download {url}: {code}{cause}.\n"
            "Fixes: check the network; point COURSE_DATA_URL to a mirror that serves the same CSV "
            "files (e.g. one your instructor hosts); or run offline on the tiny slices with "
            "COURSE_MODE=ci."
        ) from error
    finally:
        tmp.unlink(missing_ok=True)  # after a failure; after success it was renamed already
    return target


def read_course_csv(path: str | pathlib.Path, task: Task | None = None, check_labels: bool = True) -> pd.DataFrame:
    """Read and check a CSV file of `task` (default: the default task), in the course's column names.

    Works for your own data too: the columns and labels are the task's (see utils/task.py). The
    task's columns are renamed to the course's (see the module docstring); a context column the
    task does not have is added empty. `label` is (re)computed from the label names. With
    `check_labels`, a label the task does not know is a DataError that says how to fix it.
    """
    task = task or _DEFAULT
    path = pathlib.Path(path)
    if not path.exists():
        ci = f" (in ci mode: {dict(task.ci_files)})" if task.ci_files else ""
        raise DataFileNotFoundError(
            f"No data file at {path}. Check the path: the task {task.name!r} names its files {dict(task.files)}{ci}; "
            f"relative paths start at {task.folder}" + (f", or at COURSE_DATA_URL / {task.data_url}"
                                                         if task.data_url else "") + "."
        )
    if _looks_like_html(path):
        raise DataError(f"{path} is a web page (HTML), not a CSV file; it starts with: {_file_start(path)!r}. "
                        "Delete it; if it came from a download, check COURSE_DATA_URL and load the data again.")
    try:
        df = pd.read_csv(path, encoding="utf-8", keep_default_na=False, dtype=str)
    except UnicodeDecodeError:
        raise DataError(
            f"{path} is not UTF-8 text: {_not_utf8(path)}. Save it as UTF-8 "
            "(in a spreadsheet: 'CSV UTF-8'), or convert it, e.g. `iconv -f latin1 -t utf-8`."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: it needs a header row and at least one data row.") from None
    except pd.errors.ParserError as error:
        raise DataError(
            f"{path} does not parse as CSV ({str(error).strip().splitlines()[-1]}); it starts with: "
            f"{_file_start(path)!r}. Save your data as CSV (in a spreadsheet: 'CSV UTF-8'); a downloaded "
            "file: delete it and load the data again."
        ) from None
    if df.empty:
        raise DataError(f"{path} has a header but no rows.")
    df = _course_columns(df, path, task)
    # A row without a text would be trained on, or labelled, as the empty string (or its context alone).
    no_text = df.index[df["text_original"].str.strip() == ""]
    if len(no_text):
        raise DataError(
            f"{path} has {len(no_text)} row(s) without a text (column {task.text_column!r}): {_rows(no_text)} "
            "(row 1 is the header). Fill the texts in, or delete those rows."
        )
    if check_labels:
        unknown = sorted(set(df["label_text"]) - set(task.labels))
        if unknown:
            rows = df.index[df["label_text"].isin(unknown)]
            raise DataError(
                f"{path} has label(s) the task {task.name!r} does not know: {unknown} ({_rows(rows)}). Known "
                f"labels: {list(task.labels)}. Add them to the task's labels (in its task file), or fix the rows."
            )
        df["label"] = df["label_text"].map(task.label2id).astype(int)
    return df


def _course_columns(df: pd.DataFrame, path: pathlib.Path, task: Task) -> pd.DataFrame:
    """`df` with the task's columns renamed to the course's; DataError naming a missing or clashing column."""
    missing = [c for c in task.required_columns() if c not in df.columns]
    if missing:
        named = {key: getattr(task, key) for key in ("text_column", "before_column", "after_column", "label_column")
                 if getattr(task, key)}
        raise DataError(
            f"{path} lacks the column(s) {missing} that the task {task.name!r} names ({named}; found: "
            f"{list(df.columns)}). Fix the column names in the task (its task file), or rename the CSV's columns."
        )
    renames = task.columns()
    clashing = [course for column, course in renames.items() if course in df.columns and course != column]
    if clashing:
        raise DataError(
            f"{path} has the column(s) {clashing}, which the course uses for the task's own columns "
            f"({ {course: column for column, course in renames.items()} }). Rename or drop those columns in the CSV."
        )
    df = df.rename(columns=renames)
    for course in COURSE_COLUMNS.values():
        if course not in df.columns:  # a task without context: empty context, as for a first sentence
            df[course] = ""
    # A row cut short leaves its last cells missing (NaN, even with keep_default_na=False): empty, as text.
    df[list(COURSE_COLUMNS.values())] = df[list(COURSE_COLUMNS.values())].fillna("")
    df["label_text"] = df["label_text"].str.strip()
    return df


def check_every_label_occurs(df: pd.DataFrame, where: str, task: Task) -> None:
    """DataError for a label of `task` that has no row in `df` (the task's train or test file)."""
    absent = [label for label in task.labels if label not in set(df["label_text"])]
    if absent:
        raise DataError(
            f"The task {task.name!r} has label(s) with no example in its {where}: {absent}. A model cannot learn, "
            "or be scored on, a label it never sees: add rows with these labels, or remove them from the task's labels."
        )


def read_task_file(where: str, task: Task, check_labels: bool = True) -> pd.DataFrame:
    """read_course_csv for a path or a URL of `task` (see Task.data_files); a URL is downloaded once and cached."""
    if where.startswith("file://"):  # a folder on this machine: read in place, no cache to go stale
        return read_course_csv(urllib.request.url2pathname(urllib.parse.urlparse(where).path), task, check_labels)
    if not where.startswith(("http://", "https://")):
        return read_course_csv(where, task, check_labels)
    # One cache folder per base URL, so a mirror or your own data never mixes with another source.
    base, name = where.rsplit("/", 1)
    source_key = hashlib.sha1((base + "/").encode()).hexdigest()[:12]
    target = download(where, cache_dir() / "data" / source_key / name, required_columns=task.required_columns())
    return read_course_csv(target, task, check_labels)


def load_course_data(split: str, task: Task | str | None = None) -> pd.DataFrame:
    """A task's "train" or "test" split (default task: the synthetic slice in ci mode, else the paper's file)."""
    task = load_task(task)
    files = task.data_files()
    if split not in files:
        raise ValueError(f"split must be one of {list(files)}, not {split!r}.")
    return read_task_file(files[split], task)


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


def hold_out(df: pd.DataFrame, n: int, seed: int, where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rest, `n` held-out rows) of `df`: a seeded, stratified sample as sample() draws it, that never
    takes a label's only example. One row of each label stays in the rest whatever the seed.

    The held-out rows are for validation (choosing the best epoch): a label whose one example went
    there would never be trained on, and one validation example measures nothing. A label with a
    single example in `where` gets a warning that says so.
    """
    single = sorted(label for label, count in df["label_text"].value_counts().items() if count == 1)
    if single:
        warnings.warn(f"{single} {'has' if len(single) == 1 else 'have'} only one example in {where}: it is kept for "
                      "training, so validation has none and cannot tell how well the model learnt it. Add examples, "
                      "or pass a --valid-csv that has some.", stacklevel=2)
    kept = df.sample(frac=1, random_state=seed).drop_duplicates("label_text")  # a seeded row of each label
    pool = df.drop(kept.index)
    if n > len(pool):
        raise DataError(f"Asked to hold out {n} rows of {where} for validation, but only {len(pool)} can be spared: "
                        f"each of its {len(kept)} labels keeps one row for training. Hold out fewer, or add rows.")
    held = sample(pool, n, seed)
    return df.drop(held.index), held


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


def course_splits(n_train: int | str, n_test: int | str, seed: int, n_valid: int = 0, context: bool = True,
                  task: Task | str | None = None) -> dict[str, pd.DataFrame]:
    """The course's shared split of `task` (default: the default task), identical in every notebook
    for the same settings.

    train: a stratified sample of `n_train` rows of the train file; valid: `n_valid` further rows
    of the train file (never in train), for choosing the best epoch; test: `n_test` rows of the
    test file, used only for the final numbers. Each gets a `text` column (see prepare_texts).
    `n_train` or `n_test` "all" (ALL_ROWS) takes every row the file has (for train: but the
    validation rows), whatever its size.
    """
    task = load_task(task)
    train_file, test_file = load_course_data("train", task), load_course_data("test", task)
    files = task.data_files()
    check_every_label_occurs(train_file, f"train file ({files['train']})", task)
    check_every_label_occurs(test_file, f"test file ({files['test']})", task)
    if n_train == ALL_ROWS and isinstance(n_valid, int):
        n_train = len(train_file) - n_valid
    if n_test == ALL_ROWS:
        n_test = len(test_file)
    # Checked here, not in sample(): only here are the settings' names and the sum known.
    if isinstance(n_valid, int) and isinstance(n_train, int) and n_train + n_valid > len(train_file):
        raise DataError(
            f"N_TRAIN={n_train} + N_VALID={n_valid} = {n_train + n_valid} rows are asked of the train file of the "
            f"task {task.name!r}, which has {len(train_file)}. Lower N_TRAIN or N_VALID so that they add up to at "
            f"most {len(train_file)} (N_TRAIN='{ALL_ROWS}' takes every row)."
        )
    if isinstance(n_test, int) and n_test > len(test_file):
        raise DataError(f"N_TEST={n_test} rows are asked of the test file of the task {task.name!r}, which has "
                        f"{len(test_file)}. Use N_TEST <= {len(test_file)} (or N_TEST='{ALL_ROWS}').")
    train = sample(train_file, n_train, seed)
    splits = {"train": train}
    if n_valid:
        splits["valid"] = sample(train_file.drop(train.index), n_valid, seed)
    splits["test"] = sample(test_file, n_test, seed)
    return {name: prepare_texts(df, context).reset_index(drop=True) for name, df in splits.items()}
