"""The catalog page of `featurestore serve`, loaded in a real headless browser (Debian chromium).

The page's JavaScript fetches the catalog and the results from the live service and builds the
tables; filters and sort are read from the address, so driving the page by URL exercises the
same code a click does. Skips with a reason when no chromium is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from featurestore_app.service import create_app
from tests.app.test_service import FAST_CKPT, SETTINGS, build_served_store, live_server

bs4 = pytest.importorskip("bs4")
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no headless browser: `apt-get install -y chromium` to run this test")


def browse(url: str, profile: Path) -> bs4.BeautifulSoup:
    """The page's DOM after its scripts ran (virtual time waits for the fetches)."""
    assert BROWSER is not None
    proc = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return bs4.BeautifulSoup(proc.stdout, "html.parser")


def rows(dom: bs4.BeautifulSoup, table: str) -> list[list[str]]:
    return [[td.get_text(strip=True) for td in tr.find_all("td")]
            for tr in dom.select(f"#{table} tbody tr")]


def column(dom: bs4.BeautifulSoup, name: str) -> list[str]:
    heads = [th.get_text(strip=True) for th in dom.select("#results thead th")]
    i = heads.index(name)
    return [r[i] for r in rows(dom, "results")]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_served_store(tmp_path_factory.mktemp("page"))


def test_catalog_page_in_a_browser(store: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "index.html").write_text("<!DOCTYPE html><title>report</title><h1>report</h1>")
    with live_server(create_app(store, reports=reports)) as base:
        dom = browse(f"{base}/", tmp_path / "profile")
        assert dom.body["data-ready"] == "1", dom.select_one("#status")
        [entry] = rows(dom, "entries")
        assert entry[:2] == [FAST_CKPT, "imagefolder"]
        assert entry[3:6] == ["36", "64", "complete"]  # N (24 train+val, 12 test), D, status
        assert "test 12" in entry[2] and entry[6].endswith(("KiB", "MiB"))
        prov = dom.select_one("#entries tbody tr pre").get_text()
        assert '"feature_dim": 64' in prov and FAST_CKPT in prov
        assert dom.select_one("#results-count").get_text() == "(3 of 3)"
        assert sorted(column(dom, "setting")) == sorted(SETTINGS)
        assert dom.select_one("#latest-report")["href"] == "/reports/index.html"

        # Filtering narrows the table; an unknown dataset leaves nothing.
        dom = browse(f"{base}/?setting=svm", tmp_path / "profile")
        assert column(dom, "setting") == ["svm"]
        assert dom.select_one("#results-count").get_text() == "(1 of 3)"
        dom = browse(f"{base}/?dataset=imagefolder&setting=finetune", tmp_path / "profile")
        assert column(dom, "setting") == ["finetune"]
        dom = browse(f"{base}/?ckpt=nothing-like-this", tmp_path / "profile")
        assert dom.select_one("#results-count").get_text() == "(0 of 3)"

        # Sorting by a numeric column, descending.
        dom = browse(f"{base}/?sort=test_metric&desc=1", tmp_path / "profile")
        assert column(dom, "test_metric") == ["0.7000", "0.6000", "0.5000"]
        assert "sorted-desc" in dom.select_one('#results th[data-column="test_metric"]')["class"]


def test_catalog_page_asks_for_the_token(store: str, tmp_path: Path) -> None:
    with live_server(create_app(store, token="t0k")) as base:
        dom = browse(f"{base}/", tmp_path / "p1")
        assert dom.body["data-ready"] == "error"
        assert "needs a token" in dom.select_one("#status").get_text()
        assert not dom.select_one("#token-form").has_attr("hidden")
        dom = browse(f"{base}/#token=t0k", tmp_path / "p2")
        assert dom.body["data-ready"] == "1"
        assert dom.select_one("#results-count").get_text() == "(3 of 3)"
