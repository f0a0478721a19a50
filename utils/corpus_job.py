"""The files of a corpus-labelling job: the input read in chunks, finished chunks, the merged output.

`python -m utils.label_corpus` labels a CSV or Parquet file that may be larger than memory. This
module holds the file side of that job, so the model side stays short:

- `read_chunks` streams the input in chunks of exactly `chunk_size` rows (the last one smaller),
  as Arrow tables: a CSV with pandas' `chunksize`, a Parquet file batch by batch with pyarrow.
  Memory stays flat whatever the file size.
- Each finished chunk is written atomically as a part file in a work folder next to the output
  (`<output>.parts/part-000042.parquet`), with a small `job.json` that identifies the job: the
  input file's size, modification time and a hash of its first bytes, the model and the settings.
  A rerun of the same job continues after the last finished chunk; a rerun of a different job
  into the same output is refused with a message that says what differs.
- `merge_parts` writes the parts, in order, into the output (CSV or Parquet) and removes the folder:
  only the files the job made; a folder that holds anything else is refused before the job starts.
- `lock_job` takes the job's lock (a file lock in the work folder, dropped by the kernel when the
  process ends, so a killed job never stays locked): a second run into the same output stops at
  once and says which process holds it, instead of both writing the same parts.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
HASHED_BYTES = 1 << 20  # the first MiB: enough to tell files apart, cheap for a file of any size
JOB_FILE = "job.json"
LOCK_FILE, HOLDER_FILE = "lock", "holder.json"
# What a job writes in its work folder: its record, its lock and who holds it, part files, and the
# temporary files of an atomic write (".<name>.<pid>.tmp") that a kill may leave behind.
OWN_FILE = re.compile(rf"({re.escape(JOB_FILE)}|{LOCK_FILE}.*|{re.escape(HOLDER_FILE)}|part-\d{{6}}\.parquet"
                      rf"|\..+\.\d+\.tmp)")


class CorpusError(ValueError):
    """Input, output or job state the command cannot use; the message says how to fix it."""


def file_format(path: pathlib.Path, role: str) -> str:
    """"csv" or "parquet" from the file name's ending; `role` ("input"/"output") names it in errors."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CorpusError(f"The {role} file {path} must end in .csv or .parquet (got {path.suffix or 'no ending'!r}): "
                          "the ending says which format to read or write.")
    return kind


def input_columns(path: pathlib.Path) -> list[str]:
    """The column names of a CSV or Parquet input, read from its header or schema only.

    Raises CorpusError for a missing file, an empty one, or one with a header but no rows.
    """
    if not path.is_file():
        raise CorpusError(f"No input file at {path}. Check the path (it is relative to {pathlib.Path.cwd()}).")
    if path.stat().st_size == 0:
        raise CorpusError(f"The input file {path} is empty (0 bytes): it needs a header row and at least one row.")
    if file_format(path, "input") == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except pa.ArrowInvalid as error:
            raise CorpusError(f"{path} does not read as Parquet ({error}). Is it a CSV file with a .parquet ending?") \
                from None
        if parquet.metadata.num_rows == 0:
            raise CorpusError(f"The input file {path} has columns {parquet.schema_arrow.names} but no rows.")
        return list(parquet.schema_arrow.names)
    import pandas as pd

    try:
        first = pd.read_csv(path, nrows=1, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise CorpusError(f"The input file {path} holds no CSV header (only blank lines?): it needs a header row "
                          "and at least one row.") from None
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}). Save it as UTF-8 "
                          "(in a spreadsheet: 'CSV UTF-8') or convert it, e.g. `iconv -f latin1 -t utf-8`.") from None
    if first.empty:
        raise CorpusError(f"The input file {path} has a header {list(first.columns)} but no rows.")
    return list(first.columns)


def count_rows(path: pathlib.Path) -> int | None:
    """Rows in a Parquet file (from its metadata); None for a CSV, which would need a full read."""
    return pq.ParquetFile(path).metadata.num_rows if file_format(path, "input") == "parquet" else None


def _rechunk(batches: Iterator[pa.RecordBatch], chunk_size: int) -> Iterator[pa.Table]:
    """Regroup record batches of any size into tables of exactly `chunk_size` rows (the last one smaller).

    Chunk boundaries must not depend on how the file was written (its row groups), or a resumed
    job would pair a part file with the wrong rows.
    """
    buffer: list[pa.RecordBatch] = []
    buffered = 0
    for batch in batches:
        buffer.append(batch)
        buffered += batch.num_rows
        while buffered >= chunk_size:
            table = pa.Table.from_batches(buffer)
            yield table.slice(0, chunk_size)
            rest = table.slice(chunk_size)
            buffer, buffered = rest.to_batches(), rest.num_rows
    if buffered:
        yield pa.Table.from_batches(buffer)


def read_chunks(path: pathlib.Path, chunk_size: int) -> Iterator[pa.Table]:
    """The input file as Arrow tables of `chunk_size` rows, read lazily (memory flat).

    CSV columns are read as text, exactly as written (no "007" -> 7, no empty cell -> NaN), so the
    output repeats the user's values unchanged; Parquet columns keep their types. A byte-order mark
    (spreadsheets' "CSV UTF-8" starts with one) is not taken as part of the first column's name.
    """
    if file_format(path, "input") == "parquet":
        # iter_batches reads a row group at a time, never the whole file.
        yield from _rechunk(pq.ParquetFile(path).iter_batches(batch_size=chunk_size), chunk_size)
        return
    import pandas as pd

    try:
        with pd.read_csv(path, chunksize=chunk_size, dtype=str, keep_default_na=False,
                         encoding="utf-8-sig") as reader:
            for frame in reader:
                yield pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    except UnicodeDecodeError:
        line, text = _first_line_not_utf8(path)
        raise CorpusError(f"{path} is not UTF-8 text from line {line} on: {text!r}. Save the file as UTF-8 (in a "
                          "spreadsheet: 'CSV UTF-8'), or convert it, e.g. `iconv -f latin1 -t utf-8`. The fixed file "
                          "is a new input: delete the .parts folder next to the output first.") from None
    except pd.errors.ParserError as error:
        raise CorpusError(f"{path} does not parse as CSV ({str(error).strip().splitlines()[-1]}). Quote the fields "
                          "that hold commas or line breaks (a spreadsheet's 'Save as CSV' does), then run again; the "
                          "fixed file is a new input: delete the .parts folder next to the output first.") from None


def _first_line_not_utf8(path: pathlib.Path) -> tuple[int, bytes]:
    """The number (from 1) and the start of the first line of `path` that is not UTF-8: pandas reads
    ahead in large blocks, so its error cannot say where the bad bytes are."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number, line[:80]
    return 0, b""


# ---------------------------------------------------------------- the job's identity and its parts


def input_fingerprint(path: pathlib.Path) -> dict:
    """What identifies the input file: its absolute path, size, modification time and first bytes' hash."""
    stat = path.stat()
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(HASHED_BYTES)).hexdigest()
    return {"input": str(path.resolve()), "input_bytes": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
            "input_head_sha256": head}


def model_fingerprint(model: str) -> dict:
    """What identifies the model: its path or hub id and, for a folder, the size and time of its files.

    A model trained again into the same folder is a different model, so its part files must not
    be mixed with the old model's.
    """
    folder = pathlib.Path(model)
    if not folder.is_dir():
        return {"model": model}
    files = {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix in {".json", ".safetensors", ".bin"}}
    return {"model": str(folder.resolve()), "model_files": files}


def work_dir(output: pathlib.Path) -> pathlib.Path:
    """The folder of a job's part files and job.json: next to the output, named after it."""
    return output.with_name(output.name + ".parts")


def part_path(folder: pathlib.Path, index: int) -> pathlib.Path:
    """The part file of chunk `index` (0-based)."""
    return folder / f"part-{index:06d}.parquet"


def finished_chunks(folder: pathlib.Path) -> set[int]:
    """Indices of the chunks whose part file exists (a part file only exists once complete)."""
    if not folder.is_dir():
        return set()
    return {int(p.stem.removeprefix("part-")) for p in folder.glob("part-*.parquet")}


def check_job(output: pathlib.Path, job: dict, overwrite: bool) -> str:
    """Decide whether this run starts a new job or resumes one; read-only, so every process can call it.

    Returns "new" or "resume". Raises CorpusError when the output would overwrite a file the user
    made, or when the work folder belongs to a different job (the message names what differs).
    """
    folder = work_dir(output)
    job_file = folder / JOB_FILE
    if output.is_dir():
        raise CorpusError(f"--output {output} is a folder. Name a .csv or .parquet file to write, e.g. "
                          f"{output / 'labelled.parquet'}; --overwrite only ever replaces a file, never a folder.")
    if folder.exists() and not folder.is_dir():
        raise CorpusError(f"{folder} is a file; the job needs that name for its work folder. Rename it, or write to "
                          "another --output.")
    foreign = foreign_files(folder)
    if foreign:
        raise CorpusError(f"{folder} holds files this command did not make ({', '.join(foreign[:5])}"
                          f"{', ...' if len(foreign) > 5 else ''}). It is the work folder of --output {output.name}, "
                          "which the job empties and removes when done: move those files elsewhere, or write to "
                          "another --output.")
    if job_file.exists():
        old = json.loads(job_file.read_text(encoding="utf-8"))
        differs = sorted(key for key in set(old) | set(job) if old.get(key) != job.get(key))
        if differs:
            done = len(finished_chunks(folder))
            changes = "; ".join(f"{key}: {old.get(key)!r} then, {job.get(key)!r} now" for key in differs)
            raise CorpusError(
                f"{folder} holds an unfinished job ({done} chunk(s) done) that is not this one: {changes}.\n"
                "To continue that job, run the command again with its settings on the unchanged input. To start "
                f"over, delete {folder} (its finished chunks are lost), or write to another --output."
            )
        return "resume"
    if finished_chunks(folder):
        raise CorpusError(f"{folder} holds part files but no {JOB_FILE}, so nobody can tell which job made them. "
                          f"Delete {folder} and run again.")
    if output.exists() and not overwrite:
        raise CorpusError(f"{output} exists already. Choose another --output, or add --overwrite to replace it.")
    return "new"


def foreign_files(folder: pathlib.Path) -> list[str]:
    """Names in the work folder that no job made (sorted): the job must never delete them."""
    if not folder.is_dir():
        return []
    return sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()
                  if p.is_dir() or not OWN_FILE.fullmatch(p.name))


def lock_job(output: pathlib.Path):
    """Take the job's lock (creating the work folder) and record who holds it; return the lock.

    Raises CorpusError, naming the holder's process id, host and start time, when another run holds it.
    """
    import datetime
    import socket

    import filelock

    folder = work_dir(output)
    folder.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(folder / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        try:
            holder = json.loads((folder / HOLDER_FILE).read_text(encoding="utf-8"))
            who = f"process {holder['pid']} on {holder['host']}, started {holder['started']}"
        except (OSError, ValueError, KeyError):
            who = "a process that has not recorded itself yet"
        raise CorpusError(f"Another run is labelling into {output}: {who} (it holds {folder / LOCK_FILE}). Wait for "
                          "it to finish, or stop it (its finished chunks are kept) and run the command again; to "
                          "label two inputs at once, give each run its own --output.") from None
    _atomic_write_text(folder / HOLDER_FILE, json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}))
    return lock


def remove_work_dir(folder: pathlib.Path) -> None:
    """Delete the job's own files and the folder; anything else in it is left where it is."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and OWN_FILE.fullmatch(path.name):
            path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:  # something not ours appeared in it during the job: keep it, and the folder
        pass


def _atomic_write_text(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader sees the old file or the new one, never half of one


def start_job(output: pathlib.Path, job: dict) -> None:
    """Create the work folder and record the job in it (once, by one process)."""
    folder = work_dir(output)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / JOB_FILE).exists():
        _atomic_write_text(folder / JOB_FILE, json.dumps(job, indent=2))


def write_part(folder: pathlib.Path, index: int, table: pa.Table) -> None:
    """Write chunk `index`'s labelled rows atomically: a killed process leaves no half part behind."""
    target = part_path(folder, index)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, target)


def merge_parts(output: pathlib.Path, n_chunks: int) -> int:
    """Write parts 0..n_chunks-1, in order, into `output` (CSV or Parquet); return the rows written.

    One part is in memory at a time. The output is written under a temporary name and renamed at
    the end, and the work folder's own files are removed only after that, so an interruption loses
    nothing.
    """
    folder = work_dir(output)
    missing = [i for i in range(n_chunks) if not part_path(folder, i).exists()]
    if missing:
        raise CorpusError(f"Chunk part(s) {missing[:10]} are missing in {folder}; run the command again to redo them.")
    kind = file_format(output, "output")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    rows, writer = 0, None
    try:
        for i in range(n_chunks):
            table = pq.read_table(part_path(folder, i))
            rows += table.num_rows
            if kind == "parquet":
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            else:
                table.to_pandas().to_csv(tmp, mode="w" if i == 0 else "a", header=i == 0, index=False)
        if writer is not None:
            writer.close()
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    remove_work_dir(folder)
    return rows
