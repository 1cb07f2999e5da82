"""The demo's results page (results/index.html) in a real browser: Debian's chromium, headless,
driven by Selenium through Debian's matching chromedriver (tests/browser/install-chromium.sh
installs both when missing, as the SLURM tests install slurm-wlm). Screenshots at desktop and
phone width are written to tests/output/ for a person to look at."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO

SCREENSHOTS = REPO / "tests" / "output"
DEMO_CLAIMS = ("red_costs_ap50", "beach_scene_costs_ap50", "gray_background_within_margin", "blur_within_margin")
pytestmark = pytest.mark.skipif((shutil.which("chromium") is None or shutil.which("chromedriver") is None)
                                and (os.geteuid() != 0 or shutil.which("apt-get") is None),
                                reason="no chromium, and installing Debian's needs root and apt-get")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        done = subprocess.run(["bash", str(REPO / "tests" / "browser" / "install-chromium.sh")], capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"chromium did not install:\n{done.stdout}\n{done.stderr}"
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(v) for v in re.findall(r"\d+", colour)[:3])


def screenshot(driver, name: str, width: int) -> None:
    """The whole page at a window width (the window grown to the page's height)."""
    driver.set_window_size(width, 1000)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(height, 16000))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / name))


@pytest.mark.slow
def test_the_results_page_leads_with_the_answers_in_a_real_browser(demo_run, browser):
    from selenium.webdriver.common.by import By

    results = demo_run[0] / "results"
    browser.get((results / "index.html").as_uri())
    assert browser.title == "bgshift results"
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe
    sections = [s.get_attribute("id") for s in browser.find_elements(By.TAG_NAME, "section")]
    assert sections[:3] == ["learning", "findings", "table-AP50"] and sections[-2:] == ["pictures", "provenance"], sections
    learning = browser.find_element(By.CSS_SELECTOR, "p.learning")
    assert "ok" in learning.get_attribute("class") and "reaches its floor" in learning.text
    images = browser.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
    assert len(images) >= 14 and all(done and w > 0 and h > 0 for done, w, h, _ in images), images  # forest, sheets, 12 test sets
    saliency = [alt for *_, alt in images if alt.startswith("Saliency of")]
    assert len(saliency) == 4 and "Saliency of yolo_n · original · seed0" in saliency, saliency  # one sheet per run
    findings = browser.find_element(By.CSS_SELECTOR, "table.findings").text
    assert all(claim in findings for claim in DEMO_CLAIMS), findings
    verdicts = json.loads((results / "findings.json").read_text())["claims"]
    assert all(c["verdict"] in findings for c in verdicts)

    # a heatmap cell's colour follows its value: the best AP50 cell is greener than the worst
    cells = browser.execute_script("""return Array.from(document.querySelectorAll('table.heat[data-metric="AP50"] td'))
        .map(td => [td.innerText, getComputedStyle(td).backgroundColor])""")
    values = [(float(text.split()[0]), rgb(colour)) for text, colour in cells if text.strip() and text.strip() != "–"]
    assert len(values) >= 20
    (low, low_colour), (high, high_colour) = min(values), max(values)
    assert high - low > 0.3 and high_colour != low_colour and high_colour[1] > low_colour[1] and low_colour[0] > high_colour[0]
    header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, 'table.heat[data-metric="AP50"] th.col_heading.level1')]
    assert header[0] == "test_original" and len(header) == 10, header  # then grouped by family (only_bg_t and no_fg: no AP)
    assert "Δ" in browser.find_element(By.CSS_SELECTOR, "#table-AP50").text

    assert "Time each stage took" in browser.find_element(By.ID, "provenance").text
    stages = browser.find_element(By.CSS_SELECTOR, "#provenance table").text
    assert all(stage in stages for stage in ("train", "detect", "segment", "variants")), stages
    screenshot(browser, "results_page_desktop.png", 1400)
    screenshot(browser, "results_page_phone.png", 390)
    width, scrolled = browser.execute_script("return [document.documentElement.clientWidth, document.documentElement.scrollWidth]")
    assert scrolled <= width, "at phone width the page itself scrolls sideways (only wide tables may, inside their box)"
    assert (SCREENSHOTS / "results_page_phone.png").stat().st_size > 50_000
