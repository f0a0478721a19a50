"""The task: everything task-specific in one description, so that a task is data, not code.

A `Task` holds the labels (their order gives the label ids), a line per label saying what it
means, the NLI hypotheses (notebook 4), the LLM's answer words and instruction (notebook 7), the
annotation guidelines (notebook 6), the names of the CSV columns and the data files. Notebooks
3-7 choose one in their settings cell (`TASK=...`) and read everything from it.

Two tasks are built in, both from Laurer et al. (2023): `manifesto-military` (the default) and
`manifesto-protectionism`. Each is a task file, `data/<name>/task.json`, in the same format you
use for your own data: see the README, "Your own data", and `data/example_task/task.json`.
What a task file leaves out is generated from the label names and descriptions, with a warning.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import Mapping

from .modes import REPO_ROOT, run_mode
from .task_defaults import DEFAULTS

DEFAULT_TASK = "manifesto-military"
BUILT_IN_TASKS = {
    "manifesto-military": REPO_ROOT / "data" / "manifesto_military" / "task.json",
    "manifesto-protectionism": REPO_ROOT / "data" / "manifesto_protectionism" / "task.json",
}
SPLITS = ("train", "test")
# The course's own column names: every task's columns are renamed to these when its data is read,
# so the notebooks and utils read the same columns whatever the CSV calls them.
COURSE_COLUMNS = {"text_column": "text_original", "before_column": "text_preceding",
                  "after_column": "text_following", "label_column": "label_text"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a task name becomes part of dataset and folder names
_URL = re.compile(r"^(https?|file)://")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_GENERATED_FIELDS = ("hypotheses", "answers", "instruction", "short_instruction", "system_prompt", "guidelines")


def _warn(message: str) -> None:
    """A warning shown at the caller's line (a notebook cell), not at a line inside utils."""
    level, frame = 2, sys._getframe(1)
    inside = (str(pathlib.Path(__file__).parent), "<string>")  # "<string>": the __init__ dataclasses write
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, stacklevel=level)


class TaskError(ValueError):
    """A task description the course cannot use; the message names the problem and the fix."""


@dataclass(frozen=True)
class Task:
    """One classification task: labels, their texts for each approach, columns and data files.

    Only `name` and `files` are required. `labels` (a list, or a dict label -> description) is
    found in the train file when left out; hypotheses, answers, instruction, short_instruction,
    system_prompt and guidelines are generated from the labels and descriptions when left out
    (a warning says which; `generated` lists them). Relative paths in `files` and `ci_files`
    start at `folder` (a task file's folder; default: the current folder), or at `data_url` for
    `files` when the task has one (COURSE_DATA_URL replaces it: an instructor's mirror).
    `files` are used in every mode; `ci_files`, when given, replace them in ci mode. The fields
    cannot be reassigned; `dataclasses.replace(task, hypotheses=...)` gives a changed copy.
    """

    name: str
    files: Mapping[str, str]
    labels: tuple[str, ...] | Mapping[str, str] = ()
    description: str = ""
    descriptions: Mapping[str, str] = field(default_factory=dict)
    hypotheses: Mapping[str, str] = field(default_factory=dict)
    answers: Mapping[str, str] = field(default_factory=dict)
    instruction: str = ""
    short_instruction: str = ""
    system_prompt: str = ""
    guidelines: str = ""
    text_column: str = "text_original"
    before_column: str | None = None
    after_column: str | None = None
    label_column: str = "label_text"
    group_column: str | None = None
    examples: tuple[str, ...] = ()
    ci_files: Mapping[str, str] = field(default_factory=dict)
    data_url: str | None = None
    folder: pathlib.Path | None = None
    generated: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)  # a frozen dataclass: only here may fields be set

        if not isinstance(self.name, str) or not _SAFE_NAME.match(self.name):
            raise TaskError(f"Task name {self.name!r}: use letters, digits and - _ . only, starting with a letter or "
                            "digit, e.g. 'my-survey-topics' (it becomes part of file and dataset names).")
        self._check_types()
        put("folder", pathlib.Path(self.folder).resolve() if self.folder is not None else pathlib.Path.cwd())
        put("files", self._split_files("files", self.files, required=True))
        put("ci_files", self._split_files("ci_files", self.ci_files, required=False))
        self._check_columns()
        put("examples", tuple(str(e) for e in self.examples))
        labels = self.labels
        if isinstance(labels, Mapping):  # {label: description}: the labels and their descriptions at once
            if self.descriptions:
                raise TaskError(f"Task {self.name!r} gives descriptions twice: in `labels` (a dict) and in "
                                "`descriptions`. Keep one of them.")
            put("descriptions", dict(labels))
            labels = list(labels)
        labels = tuple(labels)
        found = not labels
        if found:
            labels = tuple(_labels_in_data(self))
        put("labels", labels)
        self._check_labels(found)
        for name in ("descriptions", "hypotheses", "answers"):
            put(name, self._per_label(name, getattr(self, name)))
        generated = [name for name in _GENERATED_FIELDS if not getattr(self, name)]
        for name in generated:
            put(name, DEFAULTS[name](self))
        put("generated", tuple(self.generated) or tuple(generated))
        self._check_answers()
        if generated:
            _warn(f"Task {self.name!r}: {', '.join(generated)} generated from the label names"
                  f"{' and descriptions' if self.descriptions else ''}. Check them (TASK.{generated[0]}, ...) and "
                  "write your own in the task file for better results.")

    # ---------------------------------------------------------------- checks

    def _check_types(self) -> None:
        """TaskError for a value of the wrong kind, e.g. a number where a text belongs."""
        texts = ("description", "instruction", "short_instruction", "system_prompt", "guidelines", "text_column",
                 "label_column")
        optional = ("before_column", "after_column", "group_column", "data_url")
        mappings = ("files", "ci_files", "descriptions", "hypotheses", "answers")
        wrong = [name for name in texts if not isinstance(getattr(self, name), str)]
        wrong += [name for name in optional if not isinstance(getattr(self, name), (str, type(None)))]
        wrong += [name for name in mappings if not isinstance(getattr(self, name), (Mapping, type(None)))]
        wrong += [name for name in ("labels", "examples") if isinstance(getattr(self, name), str)
                  or not isinstance(getattr(self, name), (list, tuple, Mapping))]
        if wrong:
            raise TaskError(f"Task {self.name!r}: the wrong kind of value for {', '.join(wrong)}. Texts and column "
                            "names are strings (a column may be null: none), files and per-label texts are objects "
                            '({"label": "text"}), labels and examples are lists.')

    def _split_files(self, name: str, files: Mapping[str, str] | None, required: bool) -> dict[str, str]:
        """`files` or `ci_files` as {"train": ..., "test": ...}; TaskError when a split is missing."""
        files = dict(files or {})
        if not files and not required:
            return {}
        wrong = sorted(set(files) - set(SPLITS))
        missing = [split for split in SPLITS if not str(files.get(split) or "").strip()]
        if wrong or missing:
            raise TaskError(f"Task {self.name!r}: `{name}` must name a train and a test file, e.g. "
                            '{"train": "train.csv", "test": "test.csv"}; '
                            + (f"it lacks {missing}" if missing else "") + ("; " if wrong and missing else "")
                            + (f"{wrong} are not splits" if wrong else "") + ".")
        return {split: str(files[split]).strip() for split in SPLITS}

    def _check_columns(self) -> None:
        named = {key: getattr(self, key) for key in ("text_column", "before_column", "after_column", "label_column",
                                                     "group_column")}
        for key in ("text_column", "label_column"):
            if not isinstance(named[key], str) or not named[key].strip():
                raise TaskError(f"Task {self.name!r}: {key} must name a column of your CSV, got {named[key]!r}.")
        given = [value for value in named.values() if value]
        if len(set(given)) < len(given):
            raise TaskError(f"Task {self.name!r}: each column can play one part only, but these repeat: {named}.")

    def _check_labels(self, found: bool) -> None:
        labels = self.labels
        where = " found in the train file" if found else ""
        if any(not isinstance(label, str) or not label.strip() or label != label.strip() for label in labels):
            raise TaskError(f"Task {self.name!r}: every label must be a non-empty name without spaces around it; "
                            f"got {list(labels)}.")
        if len({label.lower() for label in labels}) < len(labels):
            raise TaskError(f"Task {self.name!r}: the labels{where} repeat (upper and lower case count as the same): "
                            f"{list(labels)}.")
        if len(labels) < 2:
            raise TaskError(f"Task {self.name!r} has {len(labels)} label(s){where}: {list(labels)}. Classifying needs "
                            "at least 2: give the task at least two labels, and examples of each in the data.")

    def _per_label(self, name: str, values: Mapping[str, str]) -> dict[str, str]:
        """`values` (descriptions, hypotheses or answers) in label order; TaskError for a wrong or missing label."""
        values = {str(k): str(v).strip() for k, v in dict(values or {}).items()}
        unknown = sorted(set(values) - set(self.labels))
        missing = [label for label in self.labels if not values.get(label)]
        if values and (unknown or (missing and name != "descriptions")):
            raise TaskError(f"Task {self.name!r}: `{name}` must have one entry for each label {list(self.labels)}"
                            + (f"; these are not labels of the task: {unknown}" if unknown else "")
                            + (f"; these labels lack one: {missing}" if missing and name != "descriptions" else "")
                            + f". Fix the names, or leave `{name}` out to have it generated.")
        if name == "answers":  # keep the given order: it is the order of the options (A, B, C...) in the prompt
            return values
        return {label: values[label] for label in self.labels if values.get(label)}

    def _check_answers(self) -> None:
        words = [word.lower() for word in self.answers.values()]
        if len(set(words)) < len(words):
            raise TaskError(f"Task {self.name!r}: two labels have the same answer word ({dict(self.answers)}); the "
                            "model's answer must tell the labels apart. Give each label its own word.")

    # ---------------------------------------------------------------- derived values

    @property
    def label2id(self) -> dict[str, int]:
        """Label name -> id (the position in `labels`)."""
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        """Label id -> name."""
        return dict(enumerate(self.labels))

    @property
    def letters(self) -> dict[str, str]:
        """Option letter -> label, in the order the answers are listed (A, B, C...); empty beyond 26 labels."""
        return dict(zip(_LETTERS, self.answers)) if len(self.answers) <= len(_LETTERS) else {}

    @property
    def has_context(self) -> bool:
        """True when the task names a column for the sentence before or after the text."""
        return bool(self.before_column or self.after_column)

    def columns(self) -> dict[str, str]:
        """Your CSV's column -> the course's name for it (text_original, text_preceding, ...)."""
        return {getattr(self, key): course for key, course in COURSE_COLUMNS.items() if getattr(self, key)}

    def required_columns(self) -> list[str]:
        """The columns every data file of the task must have (the group column is optional: only
        notebook 7's check for bias uses it)."""
        return list(self.columns())

    def data_files(self, mode: str | None = None) -> dict[str, str]:
        """Where each split's file is, for run mode `mode` (default: the current one): a path or a URL.

        In ci mode `ci_files` when the task has them; else `files`, each a URL as it is, a name
        under the task's `data_url` (COURSE_DATA_URL replaces it), or a path from `folder`.
        """
        mode = mode or run_mode()
        if mode == "ci" and self.ci_files:
            return {split: str(_path(self.folder, name)) for split, name in self.ci_files.items()}
        base = (os.environ.get("COURSE_DATA_URL") or self.data_url) if self.data_url else None
        out = {}
        for split, name in self.files.items():
            if _URL.match(name):
                out[split] = name
            elif base:
                out[split] = (base if base.endswith("/") else base + "/") + name
            else:
                out[split] = str(_path(self.folder, name))
        return out

    def label_table(self) -> "pd.DataFrame":
        """The labels as a table: id, description, NLI hypothesis and LLM answer word."""
        import pandas as pd

        descriptions = {label: self.descriptions.get(label, "") for label in self.labels}
        return pd.DataFrame({"id": self.label2id, "description": descriptions,
                             "hypothesis (notebook 4)": dict(self.hypotheses),
                             "answer word (notebook 7)": dict(self.answers)}).rename_axis("label")


def _path(folder: pathlib.Path, name: str) -> pathlib.Path:
    path = pathlib.Path(name).expanduser()
    return path if path.is_absolute() else folder / path


def _labels_in_data(task: Task) -> list[str]:
    """The label names in the task's train file, sorted (their ids follow that order)."""
    from .data import read_task_file  # here: utils.data imports this module

    train = read_task_file(task.data_files()["train"], task, check_labels=False)
    found = sorted(set(train["label_text"]))
    _warn(f"Task {task.name!r} names no labels, so they come from its train file: {found} (ids in this order). "
          "List them in the task file to fix their order.")
    return found


# ---------------------------------------------------------------- loading


_FILE_KEYS = [f for f in Task.__dataclass_fields__ if f not in ("folder", "generated")]


def task_from_file(path: str | pathlib.Path) -> Task:
    """A Task from a task file (JSON): the keys are Task's fields; long texts may be lists of lines."""
    path = pathlib.Path(path)

    def one_value_per_key(pairs: list[tuple[str, object]]) -> dict:
        # json.loads keeps the last of two equal keys without a word: a label's first description would vanish.
        keys = [key for key, _ in pairs]
        repeated = next((key for key in keys if keys.count(key) > 1), None)
        if repeated is not None:
            shown = "{" + ", ".join(f"{key!r}: {value!r}" for key, value in pairs)
            raise TaskError(f"The task file {path} gives the key {repeated!r} twice in one object "
                            f"({shown[:200] + '...' if len(shown) > 200 else shown + '}'}). Keep one of them.")
        return dict(pairs)

    try:
        raw = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=one_value_per_key)
    except json.JSONDecodeError as error:
        raise TaskError(f"The task file {path} is not valid JSON: {error.msg} at line {error.lineno}, column "
                        f"{error.colno}. A common cause is a comma after the last entry of a list or object.") from None
    if not isinstance(raw, dict):
        raise TaskError(f"The task file {path} must hold one JSON object ({{...}}), not a {type(raw).__name__}.")
    unknown = sorted(set(raw) - set(_FILE_KEYS))
    if unknown:
        raise TaskError(f"The task file {path} has key(s) the course does not know: {unknown}. Known keys: "
                        f"{_FILE_KEYS}. Check the spelling.")
    missing = [key for key in ("name", "files") if key not in raw]
    if missing:
        raise TaskError(f"The task file {path} lacks {missing}: a task needs at least a name and its files, e.g. "
                        '"name": "my-task", "files": {"train": "train.csv", "test": "test.csv"}.')
    for key in ("instruction", "short_instruction", "system_prompt", "guidelines", "description"):
        if isinstance(raw.get(key), list):  # a list of lines reads better in JSON than one string full of \n
            raw[key] = "\n".join(raw[key])
    try:
        return Task(**raw, folder=path.parent)
    except TypeError as error:  # a value of the wrong kind, e.g. a number where a text belongs
        raise TaskError(f"The task file {path}: {error}.") from None


@functools.lru_cache(maxsize=16)
def _cached_task(path: str, changed_ns: int, mode: str, data_url: str | None) -> Task:
    # Keyed on when the task file's folder last changed (the task file, or data next to it whose labels
    # it reads) and on the mode: an edit, or another mode's files, load afresh. Within one key, the
    # notebook's settings cell and its header share one Task, and its warnings show once.
    return task_from_file(path)


def load_task(task: str | pathlib.Path | Task | None = None) -> Task:
    """The task a notebook works on: a built-in name (see BUILT_IN_TASKS), the path of a task file
    (JSON), or a Task as it is. None gives the default task, manifesto-military.

    A relative path is looked up from the current folder, then from the repository's root.
    """
    if isinstance(task, Task):
        return task
    choice = DEFAULT_TASK if task is None or not str(task).strip() else str(task).strip()
    path = BUILT_IN_TASKS.get(choice)
    if path is None:
        candidates = [pathlib.Path(choice).expanduser(), REPO_ROOT / choice]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            folder = next((p for p in candidates if p.is_dir() and (p / "task.json").is_file()), None)
            path = folder / "task.json" if folder else None
    if path is None:
        raise TaskError(f"No task {choice!r}: give a built-in task ({', '.join(BUILT_IN_TASKS)}) or the path of a task "
                        f"file (JSON), e.g. TASK='data/example_task/task.json'. Looked in {pathlib.Path.cwd()} and "
                        f"{REPO_ROOT}.")
    path = path.resolve()
    changed = max(p.stat().st_mtime_ns for p in path.parent.iterdir() if p.is_file())
    return _cached_task(str(path), changed, run_mode(), os.environ.get("COURSE_DATA_URL"))


def default_task() -> Task:
    """The course's default task, manifesto-military."""
    return load_task(DEFAULT_TASK)


def task_name(task: str | Task | None) -> str:
    """The name of a task given as a Task or a name (None: the default task's)."""
    if task is None:
        return DEFAULT_TASK
    return task.name if isinstance(task, Task) else str(task)
