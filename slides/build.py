"""Build the deck: figures, then Marp -> build/slides/deck.html (self-contained) and deck.pdf.

    python slides/build.py          # HTML and PDF
    python slides/build.py --no-pdf # HTML only

Needs Node.js (for Marp, installed by `npm ci` into slides/node_modules) and, for the PDF, a
Chromium (CHROME_PATH, default /usr/bin/chromium). The HTML has its figures inlined as data
URIs, so the one file works offline: copy it to a USB stick and present.
"""

from __future__ import annotations

import argparse
import base64
import mimetypes
import os
import pathlib
import re
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE.parent / "build" / "slides"


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
    if not (HERE / "node_modules" / ".bin" / "marp").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    subprocess.run([str(HERE / "node_modules" / ".bin" / "marp"), "deck.md", "--html", "--allow-local-files", *args],
                   cwd=HERE, check=True, env={**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-pdf", action="store_true", help="build the HTML deck only")
    args = parser.parse_args(argv)
    subprocess.run([sys.executable, str(HERE / "make_figures.py")], check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    html_path = OUT / "deck.html"
    marp("-o", str(html_path))
    html_path.write_text(inline_images(html_path.read_text(encoding="utf-8"), HERE), encoding="utf-8")
    if not args.no_pdf:
        if not shutil.which(os.environ.get("CHROME_PATH", "/usr/bin/chromium")):
            raise SystemExit("The PDF needs Chromium: install it (apt-get install chromium) or set CHROME_PATH; "
                             "or build the HTML only with --no-pdf.")
        marp("--pdf", "-o", str(OUT / "deck.pdf"))
    print(f"deck written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
