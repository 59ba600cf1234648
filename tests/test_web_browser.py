"""The web interface in a real browser: ``snapstore serve`` started as a user starts it, on
a free port over a store of corpus runs (both backends), driven by Debian's chromium
through chromedriver.  Without chromium these skip, but never under CI (.ci/run installs it)."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web interface needs snapstore[web]")
webdriver = pytest.importorskip("selenium.webdriver", reason="browser tests need selenium (snapstore[test])")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

import snapstore  # noqa: E402
from helpers import HOSTILE, UNDER_CI, fill_web_store, roots_of  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Flags that keep a headless chromium on this machine's closed network quiet and quick.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1300,1000")


def chromium(downloads: Path) -> webdriver.Chrome:
    """A headless Debian chromium that saves downloads in ``downloads``; a skip without it
    (a failure under CI)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        if UNDER_CI:
            pytest.fail(f"CI must have Debian's chromium and chromium-driver ({', '.join(missing)} missing)")
        pytest.skip(f"browser tests need Debian's chromium and chromium-driver: apt-get install chromium "
                    f"chromium-driver ({', '.join(missing)} missing)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={downloads.parent / 'profile'}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(url: str, cwd: Path, token: str | None = None) -> tuple[subprocess.Popen, str]:
    """``snapstore serve`` on a free loopback port, once it answers; returns it and its address."""
    port = _free_port()
    command = [str(Path(sys.executable).parent / "snapstore"), "serve", "--db", url, "--port", str(port)]
    server = subprocess.Popen(command + (["--token", token] if token else []), cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"snapstore serve exited: {server.stdout.read() if server.stdout else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    server.kill()
    pytest.fail("snapstore serve did not start within 60 s")


@pytest.fixture(scope="module")
def site(module_store_url, tmp_path_factory) -> Iterator[tuple[str, dict[str, Path]]]:
    folders = fill_web_store(module_store_url)
    server, address = start_server(module_store_url, tmp_path_factory.mktemp("serve"))
    yield address, folders
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[tuple[webdriver.Chrome, Path]]:
    folder = tmp_path_factory.mktemp("chromium")
    downloads = folder / "downloads"
    downloads.mkdir()
    driver = chromium(downloads)
    yield driver, downloads
    driver.quit()


def _listed(driver) -> list[str]:
    return [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#runs td.name a")]


def _open_run(driver, address: str, name: str) -> None:
    """From the runs page, the page of run ``name``, once it is there."""
    driver.get(address + "/")
    driver.find_element(By.LINK_TEXT, name).click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "snapshots"))


def _drawn(driver, selector: str = "img#figure") -> int:
    """The natural width of the image once the browser has loaded it (0 if it could not)."""
    image = driver.find_element(By.CSS_SELECTOR, selector)
    WebDriverWait(driver, 60).until(lambda _: driver.execute_script("return arguments[0].complete", image))
    return int(driver.execute_script("return arguments[0].naturalWidth", image))


def _saved(downloads: Path, suffix: str, link) -> Path:
    """The one file the browser saves when ``link`` is clicked (once it has finished: chromium
    names it ``*.crdownload`` until then)."""
    for item in downloads.iterdir():
        item.unlink()
    link.click()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [path for path in downloads.iterdir() if path.name.endswith(suffix)]
        if found:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.1)
    pytest.fail(f"the browser saved no *{suffix} within 60 s")


def test_filtering_the_runs_list_shows_the_runs_that_match(site, browser, module_store_url) -> None:
    address, _ = site
    driver, _ = browser
    driver.get(address + "/")
    with snapstore.open(module_store_url, create=False) as store:
        everything = sorted(run.name for run in store.runs())
        chosen = [run.name for run in store.runs("makeking.n = 100 and makeking.w = 5")]
    assert sorted(_listed(driver)) == everything
    field = driver.find_element(By.ID, "where")
    field.clear()
    field.send_keys("makeking.n = 100 and makeking.w = 5")
    driver.find_element(By.ID, "apply").click()
    WebDriverWait(driver, 30).until(lambda d: "where=" in d.current_url)
    assert _listed(driver) == chosen and 0 < len(chosen) < len(everything)
    field = driver.find_element(By.ID, "where")
    field.clear()
    field.send_keys("makeking.n = = 3")
    driver.find_element(By.ID, "apply").click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "error"))
    assert "makeking.n = = 3" in driver.find_element(By.ID, "where").get_attribute("value")
    assert driver.find_element(By.ID, "error").text and not _listed(driver)


def test_a_run_page_draws_its_plots(site, browser) -> None:
    address, _ = site
    driver, _ = browser
    _open_run(driver, address, "binaries")
    assert driver.find_element(By.ID, "name").text == "binaries"
    assert _drawn(driver) == 1100  # plotting.RUN_SIZE at its DPI
    driver.find_element(By.CSS_SELECTOR, "#snapshots a[href$='/snapshot/3']").click()
    WebDriverWait(driver, 30).until(lambda d: "/snapshot/3" in d.current_url)
    assert _drawn(driver) == 1100 and driver.find_elements(By.CSS_SELECTOR, "#root th")


def test_a_downloaded_snapshot_is_the_original_bytes(site, browser) -> None:
    address, folders = site
    driver, downloads = browser
    _open_run(driver, address, "binaries")
    saved = _saved(downloads, ".story", driver.find_element(By.CSS_SELECTOR,
                                                            "#snapshots a.story[href$='/snapshot/4/story']"))
    original = [root.text for root in roots_of(folders["binaries"] / "kira.out.gz")][3]
    assert saved.read_bytes() == original.encode()


def test_the_compare_page_overlays_two_runs(site, browser) -> None:
    address, _ = site
    driver, _ = browser
    driver.get(address + "/")
    for name in ("n100-w3-s1", "n200-w3-s1"):
        row = driver.find_element(By.XPATH, f"//td[@class='name']/a[text()='{name}']/../..")
        row.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    driver.find_element(By.ID, "compare").click()
    WebDriverWait(driver, 30).until(lambda d: "/compare" in d.current_url)
    assert [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#chosen a")] == ["n100-w3-s1", "n200-w3-s1"]
    assert _drawn(driver) == 1100
    driver.find_element(By.ID, "where").send_keys("tag.family = grid")
    driver.find_element(By.ID, "by").send_keys("makeking.n")
    driver.find_element(By.ID, "apply").click()
    WebDriverWait(driver, 30).until(lambda d: "by=makeking.n" in d.current_url)
    assert _drawn(driver) > 0


def test_a_hostile_run_name_is_shown_as_text(site, browser) -> None:
    address, _ = site
    driver, _ = browser
    driver.get(address + "/")
    assert HOSTILE in _listed(driver)
    _open_run(driver, address, HOSTILE)
    assert driver.find_element(By.ID, "name").text == HOSTILE
    assert driver.execute_script("return document.scripts.length") == 0
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it is the check that no alert opened


def test_downloading_the_whole_stream_through_the_browser(site, browser) -> None:
    address, folders = site
    driver, downloads = browser
    _open_run(driver, address, HOSTILE)
    saved = _saved(downloads, "-kira.out", driver.find_element(By.ID, "download-stream"))
    assert saved.read_bytes() == gzip.decompress((folders[HOSTILE] / "kira.out.gz").read_bytes())
