"""The web UI in a real browser (issue 12): Playwright driving Debian's Chromium (/usr/bin/chromium,
never a downloaded browser), headless. Every page loads without console errors, search finds an
object, the point-in-time explorer shows what get_training_set returns, and a comparison of two
runs shows both runs' metrics.

Without Chromium or the playwright package the tests skip with the reason, except under CI=true
where they fail (`.ci/run` installs Chromium; the dev extra installs playwright)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest

import featureline as fl
from featureline.server import create_app
from tests.integration.server_kit import ThreadServer
from tests.ui_kit import ui_repo

CHROMIUM = os.environ.get("FEATURELINE_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("FEATURELINE_UI_SCREENSHOTS")  # a folder: save a screenshot of each page


def _missing() -> str | None:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Browser tests cannot run under CI: {reason}.")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("ui-browser") / "drivers"
    info = ui_repo(root)
    with ThreadServer(create_app(root)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 860})
            context.set_default_timeout(10_000)
            yield {**info, "url": url, "context": context, "repo": root}
        finally:
            browser.close()


@pytest.fixture
def page(site: dict[str, Any]) -> Iterator[Any]:
    """A fresh page that records console errors and uncaught exceptions (asserted empty after)."""
    p = site["context"].new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.errors = errors
    yield p
    p.close()
    assert errors == []


def visit(site: dict[str, Any], page: Any, hash_: str, shot: str | None = None) -> None:
    page.goto(f"{site['url']}/ui#/{hash_}")
    page.wait_for_selector("#app[data-ready]")
    assert page.locator("#app .error").count() == 0, page.locator("#app .error").all_inner_texts()
    if SHOTS and shot:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, f"{shot}.png"), full_page=True)


def test_every_page_loads_without_console_errors(site: dict[str, Any], page: Any) -> None:
    first, second = site["runs"]
    pages = {
        "catalog": "",
        "view": "view/driver_stats",
        "runs": "runs",
        "run": f"run/{first}",
        "compare": f"compare/{first},{second}",
        "models": "models",
        "model": "model/driver_quality",
        "lineage": "lineage/driver_quality",
        "pit": "pit?view=driver_stats&key=1001",
    }
    for name, hash_ in pages.items():
        visit(site, page, hash_, name)
        assert page.locator("h1").count() == 1, name
    visit(site, page, "view/driver_stats")
    assert page.locator("#stats svg.histogram").count() == 3  # one per numeric feature
    visit(site, page, f"run/{first}")
    assert page.locator("#step-graph rect").count() == 4  # the example pipeline's four steps
    visit(site, page, "lineage/driver_quality")
    assert page.locator("#lineage [data-node='feature_view:driver_stats@v1']").count() == 1
    assert page.locator("#lineage [data-node='alias:driver_quality@production']").count() == 1


def test_search_finds_an_object_and_links_to_its_page(site: dict[str, Any], page: Any) -> None:
    visit(site, page, "")
    page.fill("#search", "hourly quality")
    page.click("form.bar button")
    page.wait_for_selector("#search-results a")
    assert page.inner_text("#search-total") == "1 result"
    page.click("#search-results a")
    page.wait_for_selector("#app[data-page=view][data-ready]")
    assert page.inner_text("h1") == "driver_stats"


def test_point_in_time_explorer_shows_what_get_training_set_returns(
    site: dict[str, Any], page: Any
) -> None:
    at = "2026-11-28T05:30:00+00:00"
    with fl.FeatureStore(site["repo"]) as store:
        row = store.preview("driver_stats", 1).to_pylist()[0]
        key = row["driver_id"]
        when = row.get("event_timestamp")
        at = when.isoformat() if isinstance(when, datetime) else at
        entity = pa.table(
            {
                "driver_id": [key],
                "event_timestamp": pa.array(
                    [datetime.fromisoformat(at)], pa.timestamp("us", "UTC")
                ),
            }
        )
        want = store.get_training_set(entity, ["driver_stats:conv_rate"]).table.to_pylist()[0]
    visit(site, page, "pit")
    page.fill("#pit-view", "driver_stats")
    page.fill("#pit-key", str(key))
    page.fill("#pit-at", at)
    page.click("#pit-go")
    page.wait_for_selector("#pit-training td[data-feature=conv_rate]")
    shown = page.inner_text("#pit-training td[data-feature=conv_rate]")
    assert float(shown) == pytest.approx(want["conv_rate"], abs=5e-5)  # shown with 4 decimals
    assert page.locator("#pit-history tbody tr").count() > 0
    assert page.locator("#pit-charts svg.line").count() == 3  # one per feature, over time


def test_a_comparison_of_two_runs_shows_both_metrics(site: dict[str, Any], page: Any) -> None:
    first, second = site["runs"]
    visit(site, page, "runs")
    page.check(f"input[data-run='{first}']")
    page.check(f"input[data-run='{second}']")
    page.click("#compare")
    page.wait_for_selector("#app[data-page=compare][data-ready]")
    with fl.FeatureStore(site["repo"]) as store:
        md = store.models.metadata
        auc = {r: md.get_run(r)["metrics"]["train.auc"] for r in (first, second)}
    for run_id, value in auc.items():
        cell = page.inner_text(f"td[data-metric='train.auc'][data-run='{run_id}']")
        assert float(cell) == pytest.approx(value, abs=5e-5)
    chart = page.locator("#compare-charts svg[data-metric='train.auc'] text.value")
    assert chart.count() == 2
    assert [float(t) for t in chart.all_text_contents()] == pytest.approx(
        [auc[first], auc[second]], abs=5e-5
    )


def test_a_comparison_of_many_runs_draws_one_dot_per_run(site: dict[str, Any], page: Any) -> None:
    with fl.FeatureStore(site["repo"]) as store:
        md = store.models.metadata
        for i in range(20):
            run_id = md.create_run("sweep", {"c": i / 10})
            md.log_params(run_id, {"c": i / 10})
            md.log_metrics(run_id, {"train.auc": 0.5 + i / 100})
            md.finish_run(run_id, "succeeded")
    visit(site, page, "runs")
    page.click("text=Compare the newest runs")
    page.wait_for_selector("#app[data-page=compare][data-ready]")
    assert page.inner_text("h1") == "Compare 22 runs"  # the 20 and the fixture's two
    assert page.locator("svg.dots[data-metric='train.auc'] circle").count() == 22
    assert page.locator("#compare-table tbody tr").count() == 22
