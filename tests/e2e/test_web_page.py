"""The page at /, driven in a real browser (Debian's chromium, headless, through its chromedriver)
against the real server on the bundled model: upload the two-speaker call, wait for the
transcript, click a word, rename a speaker, download the SRT, and an error in words; and the
live mode, with the call played into a fake microphone.

Screenshots (desktop and phone width) go to $SCREENSHOT_DIR when it is set.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

from app.engine.audio import read_pcm16_wav
from app.engine.speakers.references import wav_bytes
from tests.support.scoring import read_stm_text, word_error_rate
from tests.support.server import RunningServer

DESKTOP = (1280, 900)
PHONE = (390, 844)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path, sample_wav: Path) -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("Debian's chromium and chromium-driver are needed (scripts/bootstrap.sh dev installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        # Live mode: a microphone that plays the sample call (in a loop), granted without asking.
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={sample_wav}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


def _downloaded(path: Path) -> str:
    """The text of a file the browser downloads, once it is there."""
    deadline = time.monotonic() + 20
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.read_text()


def _screenshot(browser: WebDriver, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / f"{name}.png"))


def test_upload_read_play_rename_and_download(
    browser: WebDriver, server: RunningServer, sample_wav: Path, downloads: Path
) -> None:
    browser.set_window_size(*DESKTOP)
    browser.get(f"{server.url}/")
    assert browser.title == "Transcribe"
    start = browser.find_element(By.ID, "start")
    assert not start.is_enabled(), "nothing to send before a file is chosen"
    browser.find_element(By.ID, "file").send_keys(str(sample_wav))
    assert "sample.wav" in browser.find_element(By.ID, "file-name").text
    _screenshot(browser, "desktop-chosen")
    start.click()

    wait = WebDriverWait(browser, 300)
    wait.until(ready.visibility_of_element_located((By.ID, "result")))
    words = browser.find_elements(By.CSS_SELECTOR, "#transcript .word")
    assert len(words) > 50
    text = " ".join(w.text for w in words)
    assert "Yankee" in text or "New Jersey" in text  # the call's own words
    names = browser.find_elements(By.CSS_SELECTOR, "#speakers input")
    assert sorted(n.get_attribute("value") for n in names) == ["SPEAKER_00", "SPEAKER_01"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline .turn-bar")) >= 2
    assert browser.find_element(By.ID, "player").tag_name == "audio"

    # Clicking a word moves the player there, and the word lights up.
    word = words[len(words) // 2]
    word.click()
    position = browser.execute_script("return document.getElementById('player').currentTime")
    assert abs(position - float(word.get_attribute("data-start"))) < 0.3
    assert "active" in (word.get_attribute("class") or "")

    # Renaming a speaker renames it everywhere, downloads included.
    first = browser.find_element(By.CSS_SELECTOR, '#speakers input[data-speaker="SPEAKER_00"]')
    first.clear()
    first.send_keys("Alice")
    assert "Alice" in [w.text for w in browser.find_elements(By.CSS_SELECTOR, "#transcript .who")]
    browser.execute_script("window.scrollTo(0, 0)")
    _screenshot(browser, "desktop-result")

    browser.find_element(By.CSS_SELECTOR, '.downloads button[data-format="srt"]').click()
    content = _downloaded(downloads / "sample.srt")
    assert content.startswith("1\n") and " --> " in content
    assert "Alice" in content and "SPEAKER_00" not in content

    browser.set_window_size(*PHONE)
    time.sleep(0.3)
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE[0], f"the page scrolls sideways on a phone ({width} px)"
    _screenshot(browser, "phone-result")


def test_an_error_is_shown_in_words(browser: WebDriver, server: RunningServer, tmp_path: Path) -> None:
    browser.set_window_size(*DESKTOP)
    browser.get(f"{server.url}/")
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("these are meeting notes, not a recording\n" * 50)
    browser.find_element(By.ID, "file").send_keys(str(not_audio))
    browser.find_element(By.ID, "start").click()
    error = WebDriverWait(browser, 30).until(ready.visibility_of_element_located((By.ID, "error")))
    assert "does not look like audio" in error.text
    assert browser.find_element(By.ID, "start").is_enabled(), "the user can try another file"
    _screenshot(browser, "desktop-error")


def test_the_model_choice_lists_the_servers_models_and_the_transcript_comes_from_the_chosen_one(
    browser: WebDriver, server: RunningServer, sample_wav: Path
) -> None:
    browser.set_window_size(*DESKTOP)
    browser.get(f"{server.url}/")
    choice = Select(browser.find_element(By.ID, "model"))
    WebDriverWait(browser, 10).until(lambda _: len(choice.options) > 1)
    labels = [option.get_attribute("textContent") for option in choice.options]
    assert labels[0] == "bundled-base (the default)" and choice.options[0].get_attribute("value") == ""
    assert labels[1].startswith("bundled-tiny.en") and len(labels) == 2
    browser.find_element(By.CSS_SELECTOR, "details.options summary").click()
    choice.select_by_value("bundled-tiny.en")
    browser.find_element(By.ID, "word_timestamps").click()  # untimed: the fast path
    browser.find_element(By.ID, "hotwords").send_keys("Yankee")
    browser.find_element(By.ID, "file").send_keys(str(sample_wav))
    browser.find_element(By.ID, "start").click()
    WebDriverWait(browser, 300).until(ready.visibility_of_element_located((By.ID, "result")))
    assert browser.execute_script("return state.result.model") == "bundled-tiny.en"
    assert browser.execute_script("return state.job.id")


def test_a_known_speaker_is_called_by_the_name_given_on_the_page(
    browser: WebDriver, server: RunningServer, sample_wav: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "ann.wav"
    audio = read_pcm16_wav(sample_wav)[int(10.6 * 16000) : int(14.6 * 16000)]  # one of speaker90's turns
    clip.write_bytes(wav_bytes(audio))
    browser.set_window_size(*DESKTOP)
    browser.get(f"{server.url}/")
    browser.find_element(By.CSS_SELECTOR, "details.options summary").click()
    browser.find_element(By.ID, "add-known-speaker").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, ".known-speaker")) == 2
    browser.find_element(By.CSS_SELECTOR, ".known-speaker .known-name").send_keys("Ann")
    browser.find_element(By.CSS_SELECTOR, ".known-speaker .known-clip").send_keys(str(clip))
    browser.find_element(By.ID, "file").send_keys(str(sample_wav))
    browser.find_element(By.ID, "start").click()
    WebDriverWait(browser, 300).until(ready.visibility_of_element_located((By.ID, "result")))
    names = [n.get_attribute("value") for n in browser.find_elements(By.CSS_SELECTOR, "#speakers input")]
    assert "Ann" in names and len(names) == 2, names
    assert "Ann" in [w.text for w in browser.find_elements(By.CSS_SELECTOR, "#transcript .who")]
    _screenshot(browser, "desktop-known-speaker")


def test_the_page_is_labelled_for_keyboards_and_screen_readers(browser: WebDriver, server: RunningServer) -> None:
    browser.get(f"{server.url}/")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    for field in browser.find_elements(By.CSS_SELECTOR, "input:not([type=file]), select"):
        labelled = browser.execute_script(
            "const e = arguments[0]; return !!(e.closest('label') || e.getAttribute('aria-label'))", field
        )
        assert labelled, f"{field.get_attribute('id')} has no label"
    zone = browser.find_element(By.ID, "drop-zone")
    assert zone.get_attribute("tabindex") == "0" and zone.get_attribute("role") == "button"
    assert browser.find_element(By.ID, "status").get_attribute("role") == "status"
    assert browser.find_element(By.ID, "error").get_attribute("role") == "alert"


def test_live_mode_shows_grey_partial_words_then_black_final_ones(
    browser: WebDriver, server: RunningServer, downloads: Path, sample_stm: Path
) -> None:
    browser.set_window_size(*DESKTOP)
    browser.get(f"{server.url}/")
    browser.find_element(By.ID, "live-start").click()
    # The transcript is re-rendered as words come: an element found may be gone when read.
    wait = WebDriverWait(browser, 120, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])

    def partial_word_color(driver: WebDriver) -> str | None:
        words = [e for e in driver.find_elements(By.CSS_SELECTOR, "#live-transcript .partial") if e.text.strip()]
        return words[0].value_of_css_property("color") if words else None

    grey = wait.until(partial_word_color)  # heard while the long turn is still being spoken
    _screenshot(browser, "desktop-live-partial")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#live-transcript .word.final")) >= 30)
    final = browser.find_element(By.CSS_SELECTOR, "#live-transcript .word.final")
    assert final.value_of_css_property("color") != grey
    _screenshot(browser, "desktop-live-final")
    browser.find_element(By.ID, "live-stop").click()
    wait.until(lambda d: d.find_element(By.ID, "live-state").text.startswith("Stopped"))
    assert browser.find_element(By.ID, "live-start").is_enabled()

    browser.find_element(By.CSS_SELECTOR, '.live-downloads button[data-format="txt"]').click()
    said = _downloaded(downloads / "live-transcript.txt")
    reference = read_stm_text(sample_stm)
    # The fake microphone loops the call: score the first pass of it.
    heard = " ".join(said.split()[: len(reference.split())])
    assert word_error_rate(reference, heard) <= 0.5, said
