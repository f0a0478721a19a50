"""Build the deck and open it in a real headless Chromium: slides, images, errors, screenshot."""

import hashlib
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROME_PATH", "/usr/bin/chromium")
ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def missing_tools() -> list[str]:
    return [tool for tool in (CHROMIUM, "npm") if not shutil.which(tool)]


@pytest.fixture(scope="module")
def deck() -> pathlib.Path:
    if missing_tools():
        message = f"the slide test needs {missing_tools()} (apt-get install chromium nodejs npm)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run([sys.executable, str(ROOT / "slides" / "build.py")], check=True, cwd=ROOT)
    return ROOT / "build" / "slides"


def expected_slide_count() -> int:
    text = (ROOT / "slides" / "deck.md").read_text(encoding="utf-8")
    body = text.split("\n---\n", 1)[1]  # after the front matter
    return len(re.findall(r"^---$", body, flags=re.MULTILINE)) + 1


def test_deck_renders_every_slide_with_no_broken_image_or_script_error(deck):
    from playwright.sync_api import sync_playwright

    html = (deck / "deck.html").read_text(encoding="utf-8")
    # Offline: figures inlined, nothing loaded from the network (links to Colab are fine).
    assert 'src="figures/' not in html
    assert not re.search(r'(src=|url\()["\']?(&quot;)?https?:', html)
    assert (deck / "deck.pdf").read_bytes()[:5] == b"%PDF-"

    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto((deck / "deck.html").as_uri())
        page.wait_for_load_state("load")
        slides = page.locator("svg[data-marpit-svg]").count()
        images = page.evaluate("""() => [...document.images].map(i => ({src: i.src.slice(0, 40),
                                   ok: i.complete && i.naturalWidth > 0}))""")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "slides-title.png"))
        browser.close()

    assert slides == expected_slide_count()
    assert len(images) >= 10, images
    assert [i for i in images if not i["ok"]] == []
    assert errors == []
    assert (ARTIFACTS / "slides-title.png").stat().st_size > 10_000


def test_every_notebook_link_in_the_deck_points_to_a_course_notebook():
    import utils

    deck = (ROOT / "slides" / "deck.md").read_text(encoding="utf-8")
    links = re.findall(r"https://colab\.research\.google\.com/github/([^)\s]+)", deck)
    repo = utils.REPO_URL.removeprefix("https://github.com/")
    assert len(links) == 7
    for link in links:
        assert link.startswith(f"{repo}/blob/main/notebooks/"), link
    assert sorted(link.rsplit("/", 1)[1] for link in links) == [
        "1_open_source_toolkit.ipynb", "2_inside_transformers.ipynb", "3_tune_bert.ipynb", "4_tune_bert_nli.ipynb",
        "5_data_quality_cleanlab.ipynb", "6_annotation_argilla.ipynb", "7_tune_generative_llm.ipynb"]


def test_every_slide_has_speaker_notes():
    text = (ROOT / "slides" / "deck.md").read_text(encoding="utf-8")
    slides = re.split(r"^---$", text.split("\n---\n", 1)[1], flags=re.MULTILINE)
    for number, slide in enumerate(slides, start=1):
        # Marp directives are comments too (<!-- _class: lead -->); notes are the longer ones.
        notes = [c for c in re.findall(r"<!--(.*?)-->", slide, flags=re.DOTALL) if len(c.split()) >= 8]
        assert notes, f"slide {number} has no speaker notes"


# ---------------------------------------------------------------- the committed PDF


def slides_build():
    """slides/build.py as a module (it is a script, not part of the utils package)."""
    spec = importlib.util.spec_from_file_location("slides_build", ROOT / "slides" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pdf_page_count(data: bytes) -> int:
    """Pages of a PDF: the /Type /Page objects, also those packed in compressed object streams."""
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
    for match in re.finditer(rb"stream\r?\n", data):
        try:
            pages += len(re.findall(rb"/Type\s*/Page(?![s\w])", zlib.decompressobj().decompress(data[match.end():])))
        except zlib.error:  # an image or other stream that is not zlib-compressed
            continue
    return pages


def test_the_committed_pdf_was_built_from_the_current_deck_and_figure_inputs():
    build = slides_build()
    stamp = json.loads(build.RELEASE_STAMP.read_text(encoding="utf-8"))
    pdf = build.RELEASE_PDF.read_bytes()
    assert hashlib.sha256(pdf).hexdigest() == stamp["pdf_sha256"], (
        f"{build.RELEASE_PDF.name} was replaced without its stamp: rebuild both with `make slides-pdf`.")
    now = build.source_inputs()
    changed = sorted(name for name in set(now) | set(stamp["inputs"]) if now.get(name) != stamp["inputs"].get(name))
    assert not changed, (f"{build.RELEASE_PDF.name} is older than {changed}: rebuild it with `make slides-pdf` "
                         "(needs Node.js and Chromium) and commit the PDF and its .json stamp.")
    assert stamp["source_sha256"] == build.source_digest(now)


def test_the_committed_pdf_has_one_page_per_slide():
    pdf = slides_build().RELEASE_PDF.read_bytes()
    assert pdf[:5] == b"%PDF-"
    assert pdf_page_count(pdf) == expected_slide_count()


def test_the_lora_slide_types_no_size_the_figure_computes():
    deck = (ROOT / "slides" / "deck.md").read_text(encoding="utf-8")
    slide = next(s for s in re.split(r"^---$", deck, flags=re.MULTILINE) if "## LoRA" in s)
    visible = re.sub(r"<!--.*?-->", "", slide, flags=re.DOTALL)
    assert "figures/lora.png" in visible
    assert not re.search(r"\d[\d.,]*\s*(MB|GB|%|million|billion)", visible), visible
