"""The web pages in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by Selenium against a real `oxen-server` holding a repository pushed by the real
CLI. Sign in, open the repository, browse to a parquet file and see its first rows, open
an image (it decodes), open a commit's diff (its row counts filled in by the page's
script), download a file and compare its bytes, compare two revisions, and the pages at a
phone's width; markup in names, messages and cells stays text, and the browser reports no
error (a Content-Security-Policy violation would be one). Screenshots go to
test-artifacts/web/.

These tests never skip: without chromium and chromedriver they fail, saying what to
install (.ci/run installs both)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import oxen
from tests.sync.conftest import Server, free_port
from tests.web.content import (
    FIRST_MESSAGE,
    NAME,
    NS,
    SCRIPT,
    SCRIPT_NAME,
    SECOND_MESSAGE,
    write_first,
    write_second,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
OXEN = [sys.executable, "-m", "oxen.cli.main"]
WAIT = 15.0  # seconds a page may take to show what is waited for


def _tools() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(
            "the browser tests need Debian's chromium and chromium-driver: "
            "apt-get install -y chromium chromium-driver (.ci/run installs them)",
            pytrace=False,
        )
    return chromium, driver


@dataclass
class Published:
    server: Server
    source: Path  # the working tree that was pushed
    commits: list[str]  # oldest first

    @property
    def base(self) -> str:
        return f"http://{self.server.host}"


def _oxen(cwd: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [*OXEN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"oxen {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """A real oxen-server, and team/data pushed to it by the real CLI."""
    root = tmp_path_factory.mktemp("web-browser")
    env = {**os.environ, "OXEN_CONFIG_DIR": str(root / "config")}
    data = root / "server-data"
    data.mkdir()
    server = Server(f"127.0.0.1:{free_port()}", "", data, None, env)
    server.start()
    try:
        server.token = server.add_user()
        env |= {"OXEN_AUTH_TOKEN": server.token, "OXEN_AUTH_HOST": server.host}
        src = root / "src"
        src.mkdir()
        _oxen(src, env, "config", "--name", "Ada", "--email", "ada@example.com")
        _oxen(src, env, "init")
        write_first(src)
        _oxen(src, env, "add", ".")
        _oxen(src, env, "commit", "-m", FIRST_MESSAGE)
        write_second(src)
        _oxen(src, env, "add", ".")
        _oxen(src, env, "commit", "-m", SECOND_MESSAGE)
        _oxen(src, env, "create-remote", "--name", f"{NS}/{NAME}", "--host", server.host)
        _oxen(src, env, "remote", "add", "origin", server.url(f"{NS}/{NAME}"))
        _oxen(src, env, "push")
        commits = [c.id.hex() for c in oxen.Repo(src).log("main")][::-1]
        yield Published(server, src, commits)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def driver(published: Published, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium, headless, signed in through the sign-in form."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = _tools()
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    browser.downloads = downloads  # type: ignore[attr-defined]
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        sign_in(browser, published)
        yield browser
    finally:
        browser.quit()


def sign_in(driver: Any, published: Published) -> None:
    from selenium.webdriver.common.by import By

    driver.get(published.base + "/")
    until(driver, lambda d: "/-/signin" in d.current_url)
    driver.find_element(By.ID, "token").send_keys(published.server.token)
    shot(driver, "sign-in")
    driver.find_element(By.CSS_SELECTOR, "section.signin button[type=submit]").click()
    until(driver, lambda d: d.title.startswith("Repositories"))


def until(driver: Any, condition: Callable[[Any], Any], seconds: float = WAIT) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def no_alert_and_no_errors(driver: Any) -> None:
    """No script of the repository's ran (no alert), and the browser logged no error: a
    blocked inline script or a violation of the pages' policy would be one."""
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it is the check
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def click_link(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.LINK_TEXT, text).click()


# -- the tests ------------------------------------------------------------------------------


def test_open_a_repository(driver: Any, published: Published) -> None:
    from selenium.webdriver.common.by import By

    driver.get(published.base + "/")
    click_link(driver, NAME)
    until(driver, lambda d: d.title.startswith(f"{NS}/{NAME}"))
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "table.listing td.name a")]
    assert names == [SCRIPT_NAME, "data/", "images/", "labels.csv", "many/", "notes.md"]
    latest = driver.find_element(By.CSS_SELECTOR, ".latest .msg").text
    assert latest == SECOND_MESSAGE
    last_changes = driver.find_elements(By.CSS_SELECTOR, "td.last a")
    assert last_changes[0].text == FIRST_MESSAGE.split("\n")[0]  # markup shown as text
    shot(driver, "repository")
    no_alert_and_no_errors(driver)


def test_browse_to_a_parquet_file_and_see_its_first_rows(driver: Any, published: Published) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{published.base}/{NS}/{NAME}")
    click_link(driver, "data/")
    until(driver, lambda d: d.find_elements(By.LINK_TEXT, "t.parquet"))
    click_link(driver, "t.parquet")
    rows = until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "table#rows tbody tr"))
    assert len(rows) == 100
    first = [td.text for td in rows[0].find_elements(By.TAG_NAME, "td")]
    assert first == ["0", "0", "label-0000", "0.0"]
    heading = driver.find_element(By.CSS_SELECTOR, "section.schema h2").text
    assert heading == "parquet · 1,000 rows · 3 columns"
    shot(driver, "parquet")
    no_alert_and_no_errors(driver)


def test_open_an_image(driver: Any, published: Published) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{published.base}/{NS}/{NAME}/tree/images")
    click_link(driver, "cat.png")
    image = until(driver, lambda d: d.find_element(By.ID, "preview"))
    size = until(
        driver,
        lambda d: d.execute_script(
            "const i = arguments[0]; return i.complete && i.naturalWidth"
            " ? [i.naturalWidth, i.naturalHeight] : null",
            image,
        ),
    )
    assert size == [32, 24]
    shot(driver, "image")
    no_alert_and_no_errors(driver)


def test_markup_in_a_cell_a_name_and_a_message_is_text(driver: Any, published: Published) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{published.base}/{NS}/{NAME}/file/labels.csv")
    cells = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "table#rows td")]
    assert SCRIPT in cells
    driver.get(f"{published.base}/{NS}/{NAME}")
    click_link(driver, SCRIPT_NAME)
    until(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text == SCRIPT_NAME)
    assert driver.find_element(By.ID, "text").text == f"the name of this file is {SCRIPT}"
    driver.get(f"{published.base}/{NS}/{NAME}/commit/{published.commits[0]}")
    assert driver.find_element(By.ID, "message-title").text == FIRST_MESSAGE.split("\n")[0]
    shot(driver, "markup-as-text")
    no_alert_and_no_errors(driver)


def test_open_a_commits_diff(driver: Any, published: Published) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{published.base}/{NS}/{NAME}")
    click_link(driver, "Commits")
    until(driver, lambda d: d.find_elements(By.LINK_TEXT, SECOND_MESSAGE))
    click_link(driver, SECOND_MESSAGE)
    until(driver, lambda d: d.find_element(By.ID, "message-title").text == SECOND_MESSAGE)
    changed = driver.find_elements(By.CSS_SELECTOR, "table#changes td.name")
    assert [c.text for c in changed] == ["labels.csv"]
    counts = until(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".rowcounts.done"))
    assert counts.text == "+1 \u22121 ~1 rows (by id)"
    shot(driver, "commit-diff")
    driver.find_element(By.LINK_TEXT, "rows").click()
    until(driver, lambda d: d.find_element(By.ID, "rowcounts"))
    assert "1 modified" in driver.find_element(By.ID, "rowcounts").text
    shot(driver, "row-diff")
    no_alert_and_no_errors(driver)


def test_download_a_file_and_compare_its_bytes(driver: Any, published: Published) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{published.base}/{NS}/{NAME}/file/data/t.parquet")
    driver.find_element(By.ID, "download").click()
    saved = driver.downloads / "t.parquet"
    until(driver, lambda d: saved.exists() and not list(d.downloads.glob("*.crdownload")))
    expected = (published.source / "data" / "t.parquet").read_bytes()
    assert saved.read_bytes() == expected
    # the same bytes with the browser's session cookie from another client, one range too
    cookie = driver.get_cookie("oxen_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    url = f"{published.base}/{NS}/{NAME}/raw/data/t.parquet?rev=main"
    request = urllib.request.Request(
        url, headers={"Cookie": f"oxen_token={cookie['value']}", "Range": "bytes=4-99"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 206 and answer.read() == expected[4:100]
    no_alert_and_no_errors(driver)


def test_compare_two_revisions(driver: Any, published: Published) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{published.base}/{NS}/{NAME}")
    click_link(driver, "Compare")
    form = until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "form.compare"))
    form.find_element(By.NAME, "base").send_keys(published.commits[0])
    form.find_element(By.NAME, "head").send_keys("main")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "section.comparison"))
    heading = driver.find_element(By.CSS_SELECTOR, "section.comparison h2").text
    assert heading.startswith("1 commit in main not in")
    counts = until(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".rowcounts.done"))
    assert counts.text.startswith("+1 ")
    shot(driver, "compare")
    no_alert_and_no_errors(driver)


def test_pages_fit_a_phone(driver: Any, published: Published) -> None:
    driver.set_window_size(390, 844)
    try:
        for name, path in (
            ("phone-repository", f"/{NS}/{NAME}"),
            ("phone-parquet", f"/{NS}/{NAME}/file/data/t.parquet"),
            ("phone-commit", f"/{NS}/{NAME}/commit/{published.commits[1]}"),
        ):
            driver.get(published.base + path)
            width = driver.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert width[0] <= width[1], (path, width)  # wide tables scroll in their box
            shot(driver, name)
    finally:
        driver.set_window_size(1280, 900)
    no_alert_and_no_errors(driver)


def test_sign_out_and_in_again(driver: Any, published: Published) -> None:
    from selenium.webdriver.common.by import By

    driver.get(published.base + "/")
    driver.find_element(By.CSS_SELECTOR, "form.signout button").click()
    until(driver, lambda d: "/-/signin" in d.current_url)
    assert driver.get_cookie("oxen_token") is None
    driver.get(f"{published.base}/{NS}/{NAME}")  # back to sign-in, then to the page asked for
    until(driver, lambda d: "/-/signin" in d.current_url)
    driver.find_element(By.ID, "token").send_keys(published.server.token)
    driver.find_element(By.CSS_SELECTOR, "section.signin button[type=submit]").click()
    until(driver, lambda d: d.title.startswith(f"{NS}/{NAME}"))
    no_alert_and_no_errors(driver)
