"""A person's path through Argilla's web page: sign in, open the dataset, label one record, Submit.

Then the SDK must see that answer. Headless Chromium (CHROME_PATH, else `chromium` on PATH, as
.ci/run installs it from Debian), driven by the `playwright` package; no browser is downloaded.
The screenshot of the annotation page goes to build/test-artifacts/argilla-annotation.png.

Skips, with the reason, when no server is configured (see tests/test_annotation.py for how one is
found or started), when the server's user and password are unknown (ARGILLA_TEST_USERNAME /
ARGILLA_TEST_PASSWORD; the test server's launcher provides them), or when Chromium is missing;
under CI=true each of these fails instead (tests/conftest.py), as the slides test does.
"""

import os
import pathlib
import re
import shutil
import uuid

import pandas as pd
import pytest

import utils

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The browser .ci/run provides: any `chromium` on PATH (CHROME_PATH names another one).
CHROMIUM = shutil.which(os.environ.get("CHROME_PATH", "chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
ARTIFACTS = ROOT / "build" / "test-artifacts"
SCREENSHOT = ARTIFACTS / "argilla-annotation.png"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def server(argilla_launcher):
    info = argilla_launcher.server_for_tests()
    if info is None:
        pytest.skip(argilla_launcher.SKIP_REASON)
    if not (info.get("username") and info.get("password")):
        pytest.skip("the browser test signs in with a user name and password: set ARGILLA_TEST_USERNAME and "
                    "ARGILLA_TEST_PASSWORD for the server in ARGILLA_API_URL (launcher.py env prints them)")
    if CHROMIUM is None:
        message = (f"no Chromium: {os.environ.get('CHROME_PATH', 'chromium')!r} is not on PATH "
                   "(apt-get install -y chromium, or set CHROME_PATH)")
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:  # as utils.modes reads CI
            pytest.fail(message)
        pytest.skip(message)
    return info


def review_table() -> pd.DataFrame:
    quotes = ["We will double the number of army reservists.", "Our schools need more teachers.",
              "We will leave the military alliance."]
    return pd.DataFrame({
        "text_original": quotes, "text_preceding": ["Security matters.", "", ""], "text_following": "",
        "label_text": ["Military: Positive", "Other", "Military: Negative"],
        "suggested_label": ["Military: Positive", "Other", "Military: Negative"], "suggested_score": 0.8,
        "label_quality": [0.1, 0.2, 0.3], "is_label_issue": False, "split": "train",
        "embedding": [[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]],
    })


def test_label_one_record_in_the_browser_and_read_it_back(server):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    client = utils.connect(utils.ArgillaCredentials(server["url"], server["api_key"], "test"))
    df = review_table()
    name = f"browser-test-{uuid.uuid4().hex[:8]}"
    dataset, _ = utils.get_or_create_dataset(client, name, utils.review_settings(2))
    utils.log_new_records(dataset, utils.review_records(df))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{server['url']}/sign-in")
            page.fill("input[name=Username]", server["username"])
            page.fill("input[name=Password]", server["password"])
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "sign-in" not in url)

            # The home page lists the datasets; open ours like a person would (or by its address, if the
            # list is too long to show it).
            link = page.get_by_text(name, exact=True).first
            try:
                link.wait_for(timeout=15_000)
                link.click()
            except PlaywrightTimeout:
                page.goto(f"{server['url']}/dataset/{dataset.id}/annotation-mode")
            page.wait_for_url("**/annotation-mode**")
            quote_shown = _quote_on_page(page, df["text_original"].tolist())
            given = df.set_index("text_original").loc[quote_shown, "label_text"]
            choice = next(label for label in utils.LABELS if label != given)  # a change a person would make

            label = page.locator(f'label[for="stance_{choice}"]')
            label.click()
            active = re.compile(r"\blabel-active\b")
            expect(label).to_have_class(active)  # the chosen label is selected ...
            expect(page.locator(f'label[for="stance_{given}"]')).not_to_have_class(active)  # ... the suggestion no more
            page.mouse.move(0, 0)  # no hover highlight in the picture
            page.screenshot(path=str(SCREENSHOT), animations="disabled")  # transitions finished
            page.locator("button.button--submit").click()
            # After a submit the page moves on to the next pending record.
            expect(page.get_by_text(quote_shown, exact=True)).to_have_count(0)
        finally:
            browser.close()

    assert SCREENSHOT.stat().st_size > 10_000
    responses = utils.submitted_responses(client, dataset)
    assert len(responses) == 1
    row = responses.iloc[0]
    assert (row["quote"], row["label"], row["annotator"]) == (quote_shown, choice, server["username"])


def _quote_on_page(page, quotes: list[str]) -> str:
    """The quote of the record the page shows, once it has loaded."""
    for _ in range(TIMEOUT_MS // 250):
        shown = [q for q in quotes if page.get_by_text(q, exact=True).count()]
        if shown:
            return shown[0]
        page.wait_for_timeout(250)
    raise AssertionError(f"none of the test quotes appeared on the page: {page.inner_text('body')[:500]}")
