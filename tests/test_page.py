"""The page of fable-serve in a real headless Chromium: suggestions as you type, a streamed continuation."""

from __future__ import annotations

import os
import shutil
from importlib.util import find_spec
from pathlib import Path

import pytest

from .helpers import GOLDEN, ROOT, start_server, stop_server

SCREENSHOT = ROOT / "bench" / "results" / "local" / "fable-serve-page.png"  # untracked; a kept copy sits beside local/


def browser_or_skip():
    """Selenium's Chrome on Debian's chromium and chromium-driver. Where they cannot be had the test
    skips with the reason, unless FABLE_REQUIRE_BROWSER is set: CI installs them and must run it."""
    missing = [name for name in ("chromium", "chromedriver") if not shutil.which(name)]
    missing += [f"{name} (pip install '.[serve]')" for name in ("starlette", "hypercorn") if not find_spec(name)]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        reason = f"no headless browser here: missing {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("FABLE_REQUIRE_BROWSER"):
            pytest.fail(reason + "; FABLE_REQUIRE_BROWSER is set: this run must test the page")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,700"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture(scope="module")
def page():
    browser = browser_or_skip()
    process, url = start_server()
    try:
        browser.get(url + "/")
        yield browser
    finally:
        browser.quit()
        stop_server(process)


def suggested(page) -> list[str]:
    """The words on the suggestion buttons, read in one script: the page replaces the buttons as
    answers arrive, so reading them one element at a time can meet a stale element."""
    return page.execute_script("return [...document.querySelectorAll('.suggestion')].map(b => b.dataset.word)")


def test_typing_suggests_and_generate_streams_the_golden_continuation(page):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(page, 30, ignored_exceptions=[StaleElementReferenceException])
    box = page.find_element(By.ID, "text")
    box.send_keys("the old mo")
    wait.until(lambda p: "mouse" in suggested(p))

    def take_mouse(p) -> bool:  # a late answer may replace the button between finding and clicking it
        p.find_element(By.CSS_SELECTOR, ".suggestion[data-word='mouse']").click()
        return True

    wait.until(take_mouse)  # takes it: "the old mouse "
    assert box.get_attribute("value") == "the old mouse "
    wait.until(lambda p: suggested(p)[:1] == ["said"])

    page.find_element(By.ID, "generate").click()
    wait.until(lambda p: p.find_element(By.ID, "output").get_attribute("data-done") == "true")
    words = [
        page.execute_script("return arguments[0].firstChild.textContent", span)
        for span in page.find_elements(By.CSS_SELECTOR, "#output .word")
    ]
    assert len(words) == 32 and "".join(words).startswith(GOLDEN)  # the streamed pieces read as text
    assert all(sub.text.endswith("ms") for sub in page.find_elements(By.CSS_SELECTOR, "#output .word sub"))
    assert page.find_element(By.ID, "stats").text.startswith("32 words in")
    output_fits = "const o = document.getElementById('output'); return o.scrollWidth <= o.clientWidth"
    assert page.execute_script(output_fits)  # the continuation wraps inside its box, not past it
    Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
    page.save_screenshot(str(SCREENSHOT))


def test_the_page_offers_a_word_typed_earlier_in_its_text_that_the_model_never_saw(unk_model):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = browser_or_skip()
    process, url = start_server("--model", str(unk_model.path))
    try:
        browser.get(url + "/")
        box = browser.find_element(By.ID, "text")
        box.send_keys("the old mouse said the axolotl , the ax")
        WebDriverWait(browser, 30).until(
            lambda p: suggested(p)[:1] == ["axolotl"]
        )  # what the server keeps: test_learned
    finally:
        browser.quit()
        stop_server(process)
