"""The console in a real browser (Debian's headless Chromium driven by Selenium) against `cortex start` with the
real model and an API key: the key form, streamed chat and stop, a `<script>` answer shown as text, unload and
load, a refused edit's error, and activity. CORTEX_CONSOLE_SCREENSHOTS=<folder> keeps the screenshots
(the README's come from `CORTEX_CONSOLE_SCREENSHOTS=docs/console pytest tests/runtime/test_server_console.py`)."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from menlo_cortex.benchmark.run_store import RunStore
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import TEST_MODEL_SHA256
from tests.runtime.cortex_server import CortexServer, running

KEY = "sk-console-test-0123456789"
KEYED = 'server:\n  auth:\n    api_keys: ["${env:CONSOLE_KEY}"]\n'
WAIT_S = 60
WORD = re.compile(r"[^\W\d_]+")
pytestmark = pytest.mark.timeout(420)
BENCH_REPORT = {
    "started_at": "2026-12-05T10:00:00Z", "target": {"label": "gemma on this device", "model": "gemma"},
    "complete": True, "kinds": ["load"], "host": {"cpu_flags": [], "accelerators": []},
    "results": {"load": {"levels": {str(streams): {"aggregate_tokens_per_s": rate}
                                    for streams, rate in ((1, 38.3), (2, 60.2), (4, 92.2), (8, 94.8))}}},
}  # fmt: skip


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, cortex_command: list[str], test_data_dir: Path
) -> Iterator[CortexServer]:
    """Its own data folder (the test model hard-linked in), holding one stored bench run for the charts."""
    data = tmp_path_factory.mktemp("console-data")
    model = Path("models", f"{TEST_MODEL_SHA256}.gguf")
    (data / "models").mkdir()
    os.link(test_data_dir / model, data / model)
    RunStore(data).add(BENCH_REPORT)
    with running(tmp_path_factory.mktemp("console"), cortex_command, data, KEYED, env={"CONSOLE_KEY": KEY}) as served:
        yield served


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(argument)
    # Chromium's singleton socket folders, left in /tmp at each run, go in a folder removed after it. A short one:
    # the socket's path must stay under 108 bytes (pytest's tmp_path was 106 under xdist, and Chromium aborted).
    with tempfile.TemporaryDirectory(prefix="cr-") as folder:
        service = Service("/usr/bin/chromedriver", env={**os.environ, "TMPDIR": folder})
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield driver
        finally:
            driver.quit()


def until(driver: WebDriver, condition: Callable[[WebDriver], object], what: str) -> None:
    WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(condition, message=f"the console never showed {what}")


def shown(driver: WebDriver, element_id: str) -> bool:
    return driver.find_element(By.ID, element_id).get_attribute("hidden") is None


def screenshot(driver: WebDriver, name: str) -> None:
    folder = os.environ.get("CORTEX_CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def open_with_key(driver: WebDriver, server: CortexServer) -> None:
    driver.get(server.base_url + "/")
    until(driver, lambda d: shown(d, "key-form"), "the key form")
    driver.find_element(By.ID, "api-key").send_keys(KEY + "\n")
    until(driver, lambda d: shown(d, "console"), "the console after the key")


def set_field(driver: WebDriver, element_id: str, value: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def answers(driver: WebDriver) -> list[str]:
    return [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#transcript li.assistant .content")]


def send(driver: WebDriver, text: str) -> None:
    driver.find_element(By.ID, "chat-input").send_keys(text + "\n")  # Enter sends


def words(shown_text: str) -> list[str]:
    """The answer's words, letters only: markup streams as text ("1.", "**") until what follows makes it a list
    or bold, so a streamed answer is a prefix of the final one only in its words."""
    return WORD.findall(shown_text)


def streaming(driver: WebDriver) -> bool:
    return bool(driver.find_element(By.ID, "chat-stop").is_enabled())


def test_a_keyless_visit_shows_the_key_form_and_no_data(server: CortexServer, browser: WebDriver) -> None:
    browser.get(server.base_url + "/")
    until(browser, lambda d: shown(d, "key-form"), "the key form")
    assert not shown(browser, "console")
    assert browser.find_elements(By.CSS_SELECTOR, "#model-rows tr, #chat-model option") == []
    assert "gemma" not in browser.page_source
    browser.find_element(By.ID, "api-key").send_keys("sk-wrong-key-000000\n")
    until(browser, lambda d: "refused" in d.find_element(By.ID, "key-error").text, "the refusal of a wrong key")
    assert not shown(browser, "console")
    screenshot(browser, "key-form")


def test_chat_streams_stops_and_shows_markup_as_text(server: CortexServer, browser: WebDriver) -> None:
    open_with_key(browser, server)
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chat-model option"), "the model choice")
    set_field(browser, "chat-temperature", "0")
    set_field(browser, "chat-max-tokens", "80")
    send(browser, "Give three tips for keeping a warehouse tidy, as a list.")
    seen: list[list[str]] = []

    def partial_answer(driver: WebDriver) -> bool:
        seen.append(words(answers(driver)[-1]) if streaming(driver) and answers(driver) else [])
        return len(seen[-1]) >= 3

    until(browser, partial_answer, "text while streaming")
    until(browser, lambda d: not streaming(d), "the end of the answer")
    final, streamed = words(answers(browser)[-1]), seen[-1][:-1]  # its last word may have been cut short
    assert final[: len(streamed)] == streamed
    assert len(final) > len(seen[-1])  # it grew: streamed, not one block
    screenshot(browser, "chat")

    set_field(browser, "chat-max-tokens", "2000")
    send(browser, "Count from 1 to 500, one number per line.")
    until(browser, lambda d: streaming(d) and answers(d)[-1], "the second answer")
    browser.find_element(By.ID, "chat-stop").click()
    until(browser, lambda d: not streaming(d), "the stop")
    stopped = answers(browser)[-1]
    time.sleep(1)  # nothing more arrives after Stop
    assert answers(browser)[-1] == stopped
    assert browser.find_element(By.ID, "chat-error").text == ""

    browser.find_element(By.ID, "chat-clear").click()
    set_field(browser, "chat-max-tokens", "40")
    send(browser, "Repeat this text exactly: <script>document.title='pwned'</script>")
    until(browser, lambda d: not streaming(d) and answers(d) and answers(d)[-1], "the echoed markup")
    assert "<script>" in answers(browser)[-1]  # shown as text...
    assert browser.find_elements(By.CSS_SELECTOR, "#transcript script") == []  # ...never made an element
    assert browser.title == "Cortex console"


def model_state(driver: WebDriver) -> str:
    cells = driver.find_elements(By.CSS_SELECTOR, "#model-rows tr td")
    return cells[0].text if cells else ""


def test_unload_and_load_a_model(server: CortexServer, browser: WebDriver) -> None:
    open_with_key(browser, server)
    browser.find_element(By.ID, "tab-models").click()
    until(browser, lambda d: model_state(d) == "ready", "the model ready")
    assert "MiB" in browser.find_element(By.CSS_SELECTOR, "#model-rows tr").text
    browser.find_element(By.CSS_SELECTOR, 'button[aria-label="Unload gemma"]').click()
    until(browser, lambda d: model_state(d) in {"sleeping", "unloaded"}, "the model unloaded")
    browser.find_element(By.CSS_SELECTOR, 'button[aria-label="Load gemma"]').click()
    until(browser, lambda d: model_state(d) == "ready", "the model loaded again")
    screenshot(browser, "models")


def test_the_console_follows_a_dark_system_theme(server: CortexServer, browser: WebDriver) -> None:
    open_with_key(browser, server)
    light = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    dark = {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", dark)
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background != light
    assert sum(int(part) for part in background[4:-1].split(",")) < 3 * 64  # rgb(r, g, b), dark
    browser.find_element(By.ID, "tab-models").click()
    until(browser, lambda d: model_state(d) == "ready", "the models, dark")
    screenshot(browser, "models-dark")


def tokens_charted(driver: WebDriver) -> bool:
    """A point of the tokens/s chart above zero (each point's title reads `tokens/s: 5.0 at 10:00:00`)."""
    titles = driver.find_elements(By.CSS_SELECTOR, "#chart-tokens circle title")
    values = [str(title.get_attribute("textContent")).split(": ")[1].split(" ")[0] for title in titles]
    return any(float(value) > 0 for value in values)


def test_activity_and_a_refused_edit_appear(server: CortexServer, browser: WebDriver) -> None:
    with server.client() as client:  # tokens for the activity chart
        chat = {"model": "gemma", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}
        client.post("/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {KEY}"}).raise_for_status()
    open_with_key(browser, server)
    browser.find_element(By.ID, "tab-activity").click()
    until(browser, tokens_charted, "the generated tokens on the tokens/s chart")
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-bench path.series"), "the bench run's chart")
    assert "gemma on this device" in browser.find_element(By.ID, "bench-rows").text
    assert "94.8" in browser.find_element(By.ID, "bench-rows").text
    screenshot(browser, "activity")

    original = server.cortexfile.read_text(encoding="utf-8")
    server.cortexfile.write_text(original.replace("context_size: 1024", "context_size: lots"), encoding="utf-8")
    try:
        browser.find_element(By.ID, "tab-status").click()
        until(browser, lambda d: shown(d, "reload-error"), "the reload error")
        assert "context_size" in browser.find_element(By.ID, "reload-error-text").text
        assert "cpu_variant" in browser.find_element(By.ID, "status").text
        screenshot(browser, "status")
    finally:
        server.cortexfile.write_text(original, encoding="utf-8")
    until(browser, lambda d: not shown(d, "reload-error"), "the error gone once the file is good again")
