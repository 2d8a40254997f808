"""The Prefect UI as a user sees it, in a real browser: Debian's chromium driven by Playwright for Python.

A dedicated Prefect server with its UI on (the suite's own server runs without), `PREFECT_UI_API_URL` set to
its API (else every page says "Something went wrong"). A script runs a pipeline against it, as a user would;
the test opens the flow-run and task-run pages, clicks the Artifacts tab, opens the artifacts and checks that
the output URIs, the metric, the profile and the reuse are shown. The window is 1280 px wide and the data root
deep, so its URIs are long: no artifact table may be wider than the page, and a long URI is a shortened link to
the whole one. Screenshots go to the test's tmp folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import REPO, _wait_healthy
from tests.servers import engine_missing, free_port

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
WIDTH = 1280  # px: a laptop's browser window
# a data root as deep as a real project's: each output path is ~300 characters
DATA_ROOT = "/".join(["data"] + [f"a-deep-folder-{i}-of-the-projects-data-root" for i in range(6)])

SCRIPT = textwrap.dedent('''
    import json, sys
    import pandas as pd
    from dbnd_prefect import log_metric, pipeline, task
    from dbnd_prefect.context import last_run

    @task
    def browse_rows(n: int) -> pd.DataFrame:
        return pd.DataFrame({"x": range(n), "kind": ["a", "b"] * (n // 2)})

    @task
    def browse_score(frame: pd.DataFrame) -> float:
        log_metric("browse_accuracy", 0.875)
        return float(frame["x"].mean())

    @pipeline
    def browse_flow(n: int = 6):
        return browse_score(browse_rows(n))

    runs = []
    for _ in range(2):  # a first run, then a fully reused one
        browse_flow(n=6)
        run = last_run()
        runs.append({"flow_run_id": run.flow_run_id, "task_runs": run.task_runs})
    print("RUNS " + json.dumps(runs))
''')


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server with its UI, on a free 127.0.0.1 port; its base URL."""
    home = tmp_path_factory.mktemp("ui-prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "server.log"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "true", "PREFECT_UI_API_URL": f"{url}/api",
           "PREFECT_API_URL": f"{url}/api", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        _wait_healthy(f"{url}/api", proc, log, timeout=120)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def runs(ui_server: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Two runs of a small pipeline (the second reuses every output), made by a script against the UI server."""
    project = tmp_path_factory.mktemp("ui-project")
    (project / "dbnd.toml").write_text(f'[run]\ndata_root = "{DATA_ROOT}"\n')
    (project / "browse_pipeline.py").write_text(SCRIPT)
    env = {**os.environ, "PREFECT_API_URL": f"{ui_server}/api", "PYTHONPATH": str(REPO),
           "PREFECT_HOME": str(tmp_path_factory.mktemp("ui-client-home"))}
    done = subprocess.run([sys.executable, "browse_pipeline.py"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("RUNS "))
    return json.loads(line[len("RUNS "):])


@pytest.fixture(scope="module")
def page(ui_server: str) -> Iterator[object]:
    if CHROMIUM is None:
        engine_missing("chromium is not installed (scripts/install-chromium.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def _open_artifacts_tab(page, url: str) -> None:
    page.goto(url)
    page.get_by_text("Artifacts", exact=True).first.click()


# every table the artifact's markdown renders: its width, its box's, its right edge and the window's
TABLES_JS = """() => Array.from(document.querySelectorAll('.artifact-data-markdown table')).map(t => ({
    width: t.scrollWidth, box: t.parentElement.clientWidth, right: t.getBoundingClientRect().right,
    window: document.documentElement.clientWidth, text: t.innerText.slice(0, 80)}))"""


def _assert_tables_fit(page) -> None:
    """No table of the open artifact is wider than its box (the UI scrolls it, without a scrollbar) or the page."""
    tables = page.evaluate(TABLES_JS)
    assert tables, "the artifact shows a table"
    too_wide = [t for t in tables if t["width"] > t["box"] or t["right"] > t["window"]]
    assert not too_wide, f"tables wider than the page at {WIDTH} px: {too_wide}"


def _assert_short_link(page, uri: str) -> None:
    """`uri`, a long local path, is a link in a table: shown shortened, pointing at the whole file:// URI, whose
    tooltip is the whole path."""
    link = page.locator(f'.artifact-data-markdown table a[href="file://{urllib.parse.quote(uri)}"]').first
    shown = link.inner_text()
    assert "…" in shown and len(shown) < len(uri) and uri.endswith(shown.rsplit("…", 1)[1]), shown
    assert link.get_attribute("title") == uri


def test_flow_run_page_shows_the_data_flow(ui_server: str, runs: list[dict], page, tmp_path: Path) -> None:
    first = runs[0]
    rows_uri = next(e for e in first["task_runs"] if e["task"] == "browse_rows")["outputs"]["result"]
    _open_artifacts_tab(page, f"{ui_server}/runs/flow-run/{first['flow_run_id']}")
    page.get_by_text("dbnd-browse-flow-data-flow").first.wait_for()
    page.screenshot(path=str(tmp_path / "flow-run-artifacts.png"), full_page=True)
    assert "Something went wrong" not in page.content()
    page.get_by_text("dbnd-browse-flow-data-flow").first.click()
    page.get_by_text("Data flow of browse_flow").first.wait_for()
    page.screenshot(path=str(tmp_path / "data-flow-artifact.png"), full_page=True)
    text = page.inner_text("body")
    assert rows_uri in text and "2 ran, 0 reused" in text  # in full under the table
    assert len(rows_uri) > 250 and DATA_ROOT in rows_uri
    _assert_tables_fit(page)
    _assert_short_link(page, rows_uri)

    second = runs[1]  # all reused: each row links the flow run that made its version
    _open_artifacts_tab(page, f"{ui_server}/runs/flow-run/{second['flow_run_id']}")
    page.get_by_text("dbnd-browse-flow-data-flow").first.click()
    page.get_by_text("0 ran, 2 reused").first.wait_for()
    page.screenshot(path=str(tmp_path / "reused-data-flow-artifact.png"), full_page=True)
    made_by = page.locator(f'.artifact-data-markdown table a[href$="/runs/flow-run/{first["flow_run_id"]}"]')
    assert made_by.count() == 2
    _assert_tables_fit(page)


def test_task_run_page_shows_outputs_metric_version_and_reuse(ui_server: str, runs: list[dict], page,
                                                              tmp_path: Path) -> None:
    first, second = runs
    score = next(e for e in first["task_runs"] if e["task"] == "browse_score")
    page.goto(f"{ui_server}/runs/task-run/{score['task_run_id']}")
    page.get_by_text(score["signature"][:12]).first.wait_for()  # Version and Tags carry the signature
    page.screenshot(path=str(tmp_path / "task-run-details.png"), full_page=True)

    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text("dbnd-browse-score-io").first.wait_for()
    page.screenshot(path=str(tmp_path / "task-run-artifacts.png"), full_page=True)
    cards = page.inner_text("body")
    assert "metric-browse-accuracy" in cards and "latest 0.875" in cards, "the metric's artifact"
    assert "profile" in cards.lower(), "the data profile's artifact"
    page.get_by_text("dbnd-browse-score-io").first.click()
    page.get_by_text("browse_score: ran").first.wait_for()
    text = page.inner_text("body")
    assert score["outputs"]["result"] in text and "browse_accuracy" in text and "0.875" in text
    _assert_tables_fit(page)
    _assert_short_link(page, score["outputs"]["result"])

    reused = next(e for e in second["task_runs"] if e["task"] == "browse_score")
    _open_artifacts_tab(page, f"{ui_server}/runs/task-run/{reused['task_run_id']}")
    page.get_by_text("dbnd-browse-score-io").first.click()
    page.get_by_text("reused a stored version").first.wait_for()
    page.screenshot(path=str(tmp_path / "reused-task-run-artifact.png"), full_page=True)
    assert first["flow_run_id"] in page.inner_text("body")
    _assert_tables_fit(page)
