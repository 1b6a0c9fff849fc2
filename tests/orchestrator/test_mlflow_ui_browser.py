"""A finished search as a user sees it in the MLflow UI: `mlflow ui` on 127.0.0.1 over the search's store,
driven in a real headless Chromium (Selenium and chromedriver, as Debian ships them).

Checks the runs page lists the candidates (opened by the link hwnas prints), a candidate's page shows its
per-layer choices and its model, and the Pareto view, shown by MLflow's own artifact viewer, draws every
candidate. Screenshots of each page are kept in the test's temp dir (`--basetemp` keeps them somewhere known).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.local_cluster import free_port, stop_process, wait_for
from orchestrator.tracking import ui_command

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`; .ci/run does it)")


@pytest.fixture(scope="module")
def ui(reference_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """`mlflow ui` over the reference search's store, as hwnas's closing line tells a user to start it."""
    store = reference_run.parents[1] / "mlflow.db"
    port = free_port()
    log = (tmp_path_factory.mktemp("mlflow-ui") / "ui.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{store}",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", "mlflow ui", timeout=180, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()  # Selenium stops the browser and its chromedriver (by the PIDs it started)


def _wait_text(driver, *texts: str, timeout: float = 60.0) -> str:
    """The page's visible text once it shows every one of ``texts``."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text
        if all(t in body for t in texts):
            return body
        time.sleep(0.5)
    raise AssertionError(f"the page never showed {[t for t in texts if t not in body]}; it shows: {body[:2000]}")


def _page_link(summary: dict, base: str) -> str:
    """The link hwnas prints at the end of a search, on this test's port."""
    line = ui_command(summary["tracking_uri"], summary["mlflow_experiment_id"])
    return base + line.split("http://127.0.0.1:5000", 1)[1]


@needs_browser
def test_the_runs_page_lists_the_candidates(ui: str, browser, reference_run: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    summary = json.loads((reference_run / "summary.json").read_text())
    browser.get(_page_link(summary, ui))
    body = _wait_text(browser, "Runs", "reference 20")  # the search run, named with its date and uid
    assert "Traces 0" not in body and "No data available" not in body  # not MLflow's GenAI overview
    # The candidates are nested below the search run: expand it, as a user clicks its "+".
    expand = browser.find_elements(By.CSS_SELECTOR, "button[data-component-id$='runnamecellrenderer.tsx_46']")
    assert expand, "no expandable parent run in the runs table"
    expand[0].click()
    cids = [row["candidate_id"] for row in summary["pareto"]]
    _wait_text(browser, *[f"-{cid[:8]}" for cid in cids])
    browser.save_screenshot(str(tmp_path / "runs.png"))


@needs_browser
def test_a_candidate_page_shows_its_layers_and_its_model(ui: str, browser, reference_run: Path, tmp_path: Path) -> None:
    summary = json.loads((reference_run / "summary.json").read_text())
    row = summary["pareto"][0]
    browser.get(f"{ui}/#/experiments/{summary['mlflow_experiment_id']}/runs/{row['mlflow_run_id']}"
                f"?workflowType=machine_learning")
    body = _wait_text(browser, "layer_00", "layer_13", "generation", "params_m", "Logged models (1)")
    assert row["encoding"] in body and "Ready" in body  # the ONNX model, logged and usable
    browser.save_screenshot(str(tmp_path / "candidate.png"))


@needs_browser
def test_the_pareto_view_renders_every_candidate(ui: str, browser, reference_run: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    summary = json.loads((reference_run / "summary.json").read_text())
    browser.get(f"{ui}/#/experiments/{summary['mlflow_experiment_id']}/runs/{summary['mlflow_run_id']}"
                f"/artifacts/pareto.html?workflowType=machine_learning")
    _wait_text(browser, "pareto.html", "pareto.png")
    deadline = time.monotonic() + 60
    while not browser.find_elements(By.TAG_NAME, "iframe"):  # MLflow shows an HTML artifact in an iframe
        assert time.monotonic() < deadline, "MLflow's artifact viewer showed no page for pareto.html"
        time.sleep(0.5)
    browser.switch_to.frame(browser.find_elements(By.TAG_NAME, "iframe")[0])
    try:
        points = []
        while len(points) < summary["candidates"]:
            assert time.monotonic() < deadline, f"the Pareto view drew {len(points)} points"
            time.sleep(0.5)
            # Plotly draws each marker as a path.point; the first plane holds every candidate once.
            points = browser.find_elements(By.CSS_SELECTOR, ".subplot.xy .scatterlayer path.point")
        legend = browser.find_element(By.CSS_SELECTOR, ".legend").text
        assert "Pareto" in legend
    finally:
        browser.switch_to.default_content()
    browser.save_screenshot(str(tmp_path / "pareto.png"))
