"""A real browser on the studio: Debian's headless Chromium, driven by selenium through Debian's chromedriver (never a
downloaded browser). It opens the page, waits for the first image, moves the γ slider with the keyboard as a person
would, waits for the new image, clicks the other example subject, renders the sweep strip, and saves screenshots (wide and
narrow).

Outside CI the test skips, saying why, when no Chromium is installed; in CI (`CI` set, as `.ci/run` does, which
also installs the packages) a missing browser is a failure. `FLEXIP_STUDIO_SCREENSHOTS=DIR` keeps the screenshots
there (docs/img/studio.png is made that way)."""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flexip.testing.browser import headless_chromium, missing_chromium

TIMEOUT = 120


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = missing_chromium()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {reason}")
        pytest.skip(reason)
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def wait_for(condition, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def result_source(driver) -> str | None:
    from selenium.webdriver.common.by import By

    images = driver.find_elements(By.CSS_SELECTOR, "#flexip-result img")
    return images[0].get_attribute("src") if images else None


def pixels(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as response:
        return np.asarray(Image.open(BytesIO(response.read())).convert("RGB"), dtype=np.int16)


def keep(path: Path, name: str) -> None:
    folder = os.environ.get("FLEXIP_STUDIO_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(folder) / name)


def test_moving_the_gamma_slider_renders_a_new_image(browser, studio_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(studio_server.url)
    first = wait_for(lambda: result_source(browser), "the first image (an example subject is rendered on load)")
    wait_for(lambda: "Rendered in" in browser.find_element(By.ID, "flexip-status").text, "the render's status line")
    slider = browser.find_element(By.CSS_SELECTOR, "#flexip-gamma input[type=range]")
    slider.click()  # a click on the track moves the thumb there too; the keys then move it on from wherever it is
    for _ in range(25):
        slider.send_keys(Keys.ARROW_RIGHT)
    number = browser.find_element(By.CSS_SELECTOR, "#flexip-gamma input[type=number]")
    value = float(number.get_attribute("value"))
    wait_for(lambda: result_source(browser) not in (None, first), "the image rendered at the new γ")
    # let the last queued render (always the latest γ) land, then check it is a different picture
    wait_for(
        lambda: f"--gamma {value:g} " in browser.find_element(By.CSS_SELECTOR, "#flexip-command textarea").get_attribute("value"), f"γ = {value:g}"
    )
    time.sleep(0.5)
    final = result_source(browser)
    assert np.abs(pixels(final) - pixels(first)).mean() > 0.5
    # a click on the other example subject makes it the reference and renders it
    examples = browser.find_elements(By.CSS_SELECTOR, "#flexip-examples button.thumbnail-item, #flexip-examples .thumbnail-item")
    assert len(examples) >= 2, "the preset's example subjects are shown"
    examples[1].click()
    wait_for(lambda: result_source(browser) not in (None, final), "the image of the clicked example subject")
    wait_for(lambda: "Rendered in" in browser.find_element(By.ID, "flexip-status").text, "the render's status line")
    browser.find_element(By.ID, "flexip-sweep-button").click()  # the sweep strip: γ 0 … 1 in one batched call
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#flexip-strip img")) >= 5, "the five images of the sweep strip")
    time.sleep(0.5)
    wide = tmp_path / "studio.png"
    browser.save_screenshot(str(wide))
    keep(wide, "studio.png")
    browser.set_window_size(420, 1500)  # a phone-sized window: the columns stack
    time.sleep(1.0)
    narrow = tmp_path / "studio-narrow.png"
    browser.save_screenshot(str(narrow))
    keep(narrow, "studio-narrow.png")
    with Image.open(wide) as shot:
        assert shot.width >= 1000
