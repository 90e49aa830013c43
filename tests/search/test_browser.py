"""The web page in a real headless browser (Debian chromium + chromedriver, driven by selenium): one
browser for the module. Screenshots at desktop (1280x800) and phone (390x844) size go to
runs/screenshots/ so that a person can look at them."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "runs" / "screenshots"
SIZES = {"desktop": (1280, 800, False), "phone": (390, 844, True)}

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
        "--window-size=1280,800",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    desktop(driver)
    yield driver
    driver.quit()


def desktop(browser) -> None:
    w, h, mobile = SIZES["desktop"]
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile},
    )


def screenshots(browser, name: str) -> list[Path]:
    """The page as it is now, at desktop and phone size: runs/screenshots/{name}-{size}.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = []
    for size, (w, h, mobile) in SIZES.items():
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile},
        )
        browser.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        assert browser.execute_script("return innerWidth") == w
        path = SCREENSHOTS / f"{name}-{size}.png"
        assert browser.save_screenshot(str(path))
        out.append(path)
    desktop(browser)
    return out


def wait(browser, condition, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(condition)


def js(browser, script: str, *args):
    return browser.execute_script(script, *args)


def wait_for_best_thumbnail(browser) -> None:
    """Until the best card's thumbnail has loaded: the test videos are 64 px wide, never enlarged."""
    loaded = "const i = document.querySelector('.card.best .thumb'); return i.complete && i.naturalWidth"
    wait(browser, lambda d: js(d, loaded) == 64)


def search(browser, text: str):
    """Type `text` in the search box, press Enter, wait for the answer; the result groups."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    answered = "return parseInt(document.body.dataset.searches, 10) || 0"
    before = js(browser, answered)
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys(text, Keys.ENTER)
    wait(browser, lambda d: js(d, answered) > before)
    return browser.find_elements(By.CSS_SELECTOR, "#results .group")


def visible(browser, selector: str) -> bool:
    return js(
        browser,
        "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0",
        selector,
    )


def open_page(browser, url: str) -> None:
    browser.get(url)
    wait(browser, lambda d: js(d, "return document.readyState") == "complete")


def test_empty_state_shows_the_index_and_example_queries(browser, live_server, searcher):
    from selenium.webdriver.common.by import By

    open_page(browser, live_server.url + "/")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#examples .example")) == 4)
    size = browser.find_element(By.ID, "index-size").text
    assert f"{searcher.num_videos} videos" in size and f"{searcher.num_frames} frames" in size
    assert "minutes of video" in size and "subtitle-minilm" in size
    assert not visible(browser, "#token-form")  # this server needs no token: no token form
    assert js(browser, "return document.activeElement.id") == "query"
    screenshots(browser, "empty")
    example = browser.find_elements(By.CSS_SELECTOR, "#examples .example")[1]
    text = example.text
    example.click()  # an example is a query: it runs, and lands in the box and the URL
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results .group"))
    assert browser.find_element(By.ID, "query").get_attribute("value") == text
    assert parse_qs(urlparse(browser.current_url).query)["q"] == [text]
    assert not visible(browser, "#empty")


def test_results_grouped_with_thumbnails_relevance_and_more(browser, live_server, spoken_line, searcher):
    from selenium.webdriver.common.by import By

    open_page(browser, live_server.url + "/")
    groups = search(browser, spoken_line["text"])
    videos = [g.get_attribute("data-video") for g in groups]
    assert videos[0] == spoken_line["vid"] and len(videos) == len(set(videos)) > 1  # one group per video
    best = groups[0].find_element(By.CSS_SELECTOR, ".card.best")
    assert (
        best.find_element(By.CSS_SELECTOR, ".file").text
        == searcher.video_path(int(best.get_attribute("data-video-idx"))).name
    )
    assert spoken_line["text"] in best.find_element(By.CSS_SELECTOR, ".line").text  # the matched line
    wait_for_best_thumbnail(browser)
    pct = best.find_element(By.CSS_SELECTOR, ".relevance .pct").text
    assert pct.endswith("% match") and 0 <= int(pct.split()[0]) <= 100
    assert "cosine similarity" in best.find_element(By.CSS_SELECTOR, ".relevance").get_attribute("title")
    assert "moments in" in browser.find_element(By.ID, "status").text
    # no two cards on one subtitle line of one video; nested spans are folded
    seen = [
        (c.get_attribute("data-video"), c.find_element(By.CSS_SELECTOR, ".line").get_attribute("textContent"))
        for c in browser.find_elements(By.CSS_SELECTOR, "#results .card")
    ]
    assert len(seen) == len(set(seen))
    # "more from this video": collapsed, then open
    more = browser.find_elements(By.CSS_SELECTOR, "#results details.more")
    assert more, "no video with a second moment"
    inner = more[0].find_element(By.CSS_SELECTOR, ".card")
    assert not inner.is_displayed()
    screenshots(browser, "results")
    more[0].find_element(By.TAG_NAME, "summary").click()
    wait(browser, lambda d: inner.is_displayed())


def test_player_captions_sound_moment_end_loop_and_replay(browser, live_server, spoken_line, searcher):
    from selenium.webdriver.common.by import By

    open_page(browser, live_server.url + "/")
    search(browser, spoken_line["text"])
    # a moment that ends well before its video does, so that a stop is the page's and not the file's end
    card = next(
        c
        for c in browser.find_elements(By.CSS_SELECTOR, "#results .card.best")
        if float(c.get_attribute("data-end")) < float(c.get_attribute("data-duration")) - 2
    )
    start, end = float(card.get_attribute("data-start")), float(card.get_attribute("data-end"))
    card.click()
    wait(
        browser,
        lambda d: js(d, "const v = document.getElementById('player'); return v.readyState >= 2 && !v.paused"),
    )
    player = js(
        browser,
        "const v = document.getElementById('player'); return {muted: v.muted, volume: v.volume, t: v.currentTime, dur: v.duration}",
    )
    assert player["muted"] is False and player["volume"] > 0 and start - 0.5 <= player["t"] <= end
    assert "playing" in card.get_attribute("class")
    # captions: the indexed subtitles as a track that is showing
    wait(
        browser,
        lambda d: js(
            d,
            "const t = document.getElementById('player').textTracks[0]; return t && t.mode === 'showing' && t.cues && t.cues.length > 0",
        ),
    )
    cues = js(browser, "return [...document.getElementById('player').textTracks[0].cues].map(c => c.text)")
    said = [s["text"] for s in searcher.subtitles(card.get_attribute("data-video"))]
    assert len(cues) == len(said) and all(text in cue for text, cue in zip(said, cues))
    screenshots(browser, "playing")
    # the moment on the scrubber
    left = js(browser, "return parseFloat(document.getElementById('scrub-moment').style.left)")
    assert left == pytest.approx(100 * start / player["dur"], abs=0.5)
    # stops at the moment's end
    js(browser, "document.getElementById('player').currentTime = arguments[0]", end - 0.4)
    wait(browser, lambda d: js(d, "return document.getElementById('player').paused"), timeout=10)
    stopped = js(browser, "return document.getElementById('player').currentTime")
    assert end - 0.45 <= stopped <= end + 0.4, (stopped, end)
    # replay moment: back to the start, playing
    browser.find_element(By.ID, "replay").click()
    wait(
        browser,
        lambda d: js(
            d,
            "const v = document.getElementById('player'); return !v.paused && v.currentTime < arguments[0] + 1",
            start,
        ),
    )
    # loop: past the end it starts over instead of stopping
    browser.find_element(By.ID, "loop").click()
    js(browser, "document.getElementById('player').currentTime = arguments[0]", end - 0.3)
    wait(
        browser,
        lambda d: js(
            d,
            "const v = document.getElementById('player'); return !v.paused && v.currentTime < arguments[0] + 0.9",
            start,
        ),
        timeout=10,
    )
    browser.find_element(By.ID, "loop").click()
    js(browser, "document.getElementById('player').pause()")


def test_autoplay_refused_offers_a_click_to_play_with_sound(browser, live_server, spoken_line):
    from selenium.webdriver.common.by import By

    open_page(browser, live_server.url + "/")
    # the browser's autoplay rules refuse the first play() (as a browser without a click would)
    js(
        browser,
        "const real = HTMLMediaElement.prototype.play; window.refused = 0;"
        "HTMLMediaElement.prototype.play = function () {"
        "  HTMLMediaElement.prototype.play = real; window.refused += 1;"
        "  return Promise.reject(new DOMException('no gesture', 'NotAllowedError')); };",
    )
    groups = search(browser, spoken_line["text"])
    groups[0].find_element(By.CSS_SELECTOR, ".card").click()
    wait(browser, lambda d: visible(d, "#tap-to-play"))
    assert js(browser, "return window.refused") == 1
    assert (
        js(browser, "return document.getElementById('player').muted") is False
    )  # never muted to get round it
    browser.find_element(By.ID, "tap-to-play").click()
    wait(browser, lambda d: not js(d, "return document.getElementById('player').paused"))
    # the button goes once play() has resolved, a moment after `paused` turns false
    wait(browser, lambda d: not visible(d, "#tap-to-play"))
    js(browser, "document.getElementById('player').pause()")


def test_nothing_relevant_below_the_threshold(browser, live_server, searcher, spoken_line, monkeypatch):
    from selenium.webdriver.common.by import By

    monkeypatch.setattr(searcher, "threshold", 0.4, raising=False)
    open_page(browser, live_server.url + "/")
    search(browser, "zxqv blorf")
    assert visible(browser, "#nothing") and not visible(browser, "#results")
    why = browser.find_element(By.ID, "nothing-why").text
    assert "below the 40 %" in why and "best match is" in why
    screenshots(browser, "nothing-relevant")
    browser.find_element(By.ID, "show-anyway").click()
    assert visible(browser, "#results .card")
    search(browser, spoken_line["text"])
    assert not visible(browser, "#nothing") and visible(browser, "#results .card")


def test_query_in_the_url_back_and_forward(browser, live_server, spoken_line):
    from selenium.webdriver.common.by import By

    first, second = spoken_line["text"], "Eve says she feels sad"
    open_page(browser, f"{live_server.url}/?q={first}")  # a shared link runs its search
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results .group"))
    assert browser.find_element(By.ID, "query").get_attribute("value") == first
    first_video = browser.find_element(By.CSS_SELECTOR, "#results .group").get_attribute("data-video")
    search(browser, second)
    assert parse_qs(urlparse(browser.current_url).query)["q"] == [second]
    second_video = browser.find_element(By.CSS_SELECTOR, "#results .group").get_attribute("data-video")
    assert first_video != second_video
    for query, video in ((first, first_video), (second, second_video)):
        (browser.back if query == first else browser.forward)()
        wait(browser, lambda d, q=query: d.find_element(By.ID, "query").get_attribute("value") == q)
        wait(
            browser,
            lambda d, v=video: (
                js(d, "const g = document.querySelector('#results .group'); return g && g.dataset.video") == v
            ),
        )


def test_keyboard_slash_arrows_and_enter(browser, live_server, spoken_line):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, live_server.url + "/")
    search(browser, spoken_line["text"])
    js(browser, "document.activeElement.blur()")
    ActionChains(browser).send_keys("/").perform()
    assert js(browser, "return document.activeElement.id") == "query"
    assert browser.find_element(By.ID, "query").get_attribute("value") == spoken_line["text"]  # no "/" typed
    cards = [c for c in browser.find_elements(By.CSS_SELECTOR, "#results .card") if c.is_displayed()]
    active = "return document.activeElement.dataset.start + '@' + document.activeElement.dataset.video"
    key = lambda c: c.get_attribute("data-start") + "@" + c.get_attribute("data-video")  # noqa: E731
    ActionChains(browser).send_keys(Keys.ARROW_DOWN).perform()
    assert js(browser, active) == key(cards[0])
    ActionChains(browser).send_keys(Keys.ARROW_DOWN).send_keys(Keys.ARROW_DOWN).perform()
    assert js(browser, active) == key(cards[2])
    ActionChains(browser).send_keys(Keys.ARROW_UP).perform()
    assert js(browser, active) == key(cards[1]) and "selected" in cards[1].get_attribute("class")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait(browser, lambda d: "playing" in cards[1].get_attribute("class"))
    vid = int(cards[1].get_attribute("data-video-idx"))
    wait(
        browser,
        lambda d: js(d, "return document.getElementById('player').currentSrc").endswith(f"/api/videos/{vid}"),
    )
    js(browser, "document.getElementById('player').pause()")


def test_loading_state_disables_the_button(browser, live_server):
    from selenium.webdriver.common.by import By

    open_page(browser, live_server.url + "/")
    js(  # hold every search answer back for a second
        browser,
        "const real = window.fetch; window.fetch = (url, opts) => String(url).includes('/api/search')"
        " ? new Promise(r => setTimeout(r, 1000)).then(() => real(url, opts)) : real(url, opts);",
    )
    browser.find_element(By.ID, "query").send_keys("hello")
    browser.find_element(By.ID, "go").click()
    go = browser.find_element(By.ID, "go")
    assert go.get_attribute("disabled") is not None and "Searching" in go.text
    assert browser.find_element(By.ID, "results-box").get_attribute("aria-busy") == "true"
    wait(browser, lambda d: go.get_attribute("disabled") is None)
    assert go.text == "Search" and browser.find_elements(By.CSS_SELECTOR, "#results .group")


def test_server_down_is_said_plainly(browser, searcher, live_server_factory):
    from selenium.webdriver.common.by import By

    from tempovl.search.service import create_app

    server = live_server_factory(create_app(searcher))
    open_page(browser, server.url + "/")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#examples .example"))
    server.stop()
    search(browser, "hello")
    status = browser.find_element(By.ID, "status")
    assert "Cannot reach the search server" in status.text and "error" in status.get_attribute("class")


def test_token_form_only_when_the_server_needs_one(browser, live_server_token, spoken_line):
    from selenium.webdriver.common.by import By

    open_page(browser, live_server_token.url + "/")
    js(browser, "localStorage.clear()")
    open_page(browser, live_server_token.url + "/")
    wait(browser, lambda d: visible(d, "#token-form"))
    browser.find_element(By.ID, "token").send_keys("s3cret")
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#examples .example")) == 4)
    assert not visible(browser, "#token-form")
    groups = search(browser, spoken_line["text"])
    assert groups and groups[0].get_attribute("data-video") == spoken_line["vid"]
    # the thumbnail and the video carry the token in their URL (img and video cannot send headers)
    wait_for_best_thumbnail(browser)
    js(browser, "localStorage.clear()")


def test_bad_query_shows_an_error(browser, live_server):
    from selenium.webdriver.common.by import By

    open_page(browser, live_server.url + "/")
    # get past the form's own max=100 check, so the server's 422 message is what the page shows
    js(browser, "const k = document.getElementById('k'); k.removeAttribute('max'); k.value = '1000';")
    browser.find_element(By.ID, "query").send_keys("hello")
    browser.find_element(By.ID, "go").click()
    wait(browser, lambda d: "k:" in d.find_element(By.ID, "status").text)
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
