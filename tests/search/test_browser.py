"""The web page in a real headless browser (Debian chromium + chromedriver, driven by selenium)."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install selenium)"
    )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_search_click_and_seek(browser, live_server, spoken_line):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(live_server.url + "/")
    box = browser.find_element(By.ID, "query")
    vid, text = spoken_line["vid"], spoken_line["text"]
    box.send_keys(text, Keys.ENTER)
    cards = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card"))
    assert len(cards) == 10
    first = cards[0]
    assert first.get_attribute("data-video") == vid
    assert text.split()[-1].strip(".!?") in first.text  # the subtitles around the moment are shown
    moment = first.find_element(By.CSS_SELECTOR, ".timeline .moment")
    assert moment.value_of_css_property("left") != "auto"
    # a later card, so the player has to switch video or seek: then the first one
    for card in (cards[3], cards[0]):
        start = float(card.get_attribute("data-start"))
        card.click()
        wait.until(
            lambda d, s=start: d.execute_script(
                "const v = document.getElementById('player');"
                "return v.readyState >= 1 && Math.abs(v.currentTime - arguments[0]) < 1.0;",
                s,
            )
        )
        src = browser.execute_script("return document.getElementById('player').currentSrc")
        assert src.startswith(live_server.url + "/api/videos/")
        assert "playing" in card.get_attribute("class")
    assert "moments in" in browser.find_element(By.ID, "status").text


def test_bad_query_shows_an_error(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_server.url + "/")
    # get past the form's own max=100 check, so the server's 422 message is what the page shows
    browser.execute_script(
        "const k = document.getElementById('k'); k.removeAttribute('max'); k.value = '1000';"
    )
    browser.find_element(By.ID, "query").send_keys("hello")
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, 20).until(lambda d: "k:" in d.find_element(By.ID, "status").text)
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
