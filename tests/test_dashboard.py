"""The dashboard in a real browser (Debian's chromium through chromedriver and selenium),
against a running service with traffic: the figures it shows are /v1/stats's."""

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import CacheService, wait_until

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "dashboard-admin-token"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

FAQ = [
    ("How do I reset my password?", "Use the reset link on the sign-in page."),
    ("What are your opening hours?", "Nine to five, Monday to Friday."),
    ("Where is my parcel?", "The tracking page knows."),
    ("How do I cancel my subscription?", "Settings, then Billing, then Cancel."),
]
TRAFFIC = [
    "How can I reset my password?", "how do I reset my password", "When are you open?",
    "What time do you open?", "Where's my parcel?", "How can I cancel my subscription?",
    "How do I cancel my subscription?", "Can I pay with a credit card?",
    "How do I change my email address?", "Do you ship to Canada?",
]  # fmt: skip


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromedriver are not installed (make system-tools)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1100"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def busy(start_service: Callable[..., CacheService]) -> CacheService:
    """A replica with keys on, entries, and traffic: hits, misses and a near miss."""
    service = start_service(
        admin_token=ADMIN, sim_latency_ms=40, audit_rate=1.0, audit_max_per_s=100,
        audit_simulated=True,  # audits of made-up answers: only for the figures shown
    )  # fmt: skip
    admin = {"Authorization": f"Bearer {ADMIN}"}
    stored = service.http.post(
        "/v1/entries", headers=admin,
        json={"entries": [{"prompt": p, "response": r} for p, r in FAQ]},
    )  # fmt: skip
    assert stored.status_code == 201
    for prompt in TRAFFIC:
        assert service.http.post("/v1/query", json={"prompt": prompt}, headers=admin).is_success
    wait_until(lambda: stats(service)["requests"] == len(TRAFFIC), message="stats flushed")
    auditor = service.runtime.queries.outcomes.auditor
    assert auditor is not None
    asyncio.run_coroutine_threadsafe(auditor.settle(), service.loop).result(30)
    assert stats(service)["wrong_answer_rate"]["audits"] > 0
    return service


def stats(service: CacheService) -> dict[str, Any]:
    answer = service.http.get("/v1/stats", headers={"Authorization": f"Bearer {ADMIN}"})
    numbers: dict[str, Any] = answer.json()
    return numbers


def test_dashboard_shows_the_stats_in_a_browser(
    busy: CacheService, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    def text(element_id: str) -> str:
        return str(browser.find_element(By.ID, element_id).text)

    def visible(element_id: str) -> bool:
        return bool(browser.find_element(By.ID, element_id).is_displayed())

    # the data needs the admin token; the page itself holds none
    assert httpx.get(f"{busy.url}/v1/dashboard").status_code == 401
    browser.get(f"{busy.url}/dashboard")
    wait_until(lambda: visible("login"), 15, message="the token form")
    assert not visible("board")
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_until(lambda: "not the admin token" in text("login-error"), 15, message="refusal")
    browser.find_element(By.ID, "token").clear()
    browser.find_element(By.ID, "token").send_keys(ADMIN)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_until(lambda: visible("board") and text("requests") != "–", 15, message="the board")

    numbers = stats(busy)  # no traffic since: the page and /v1/stats must agree
    assert text("requests") == str(numbers["requests"]) == str(len(TRAFFIC))
    assert text("hits") == str(numbers["hits"]) and numbers["hits"] > 0
    assert text("misses") == str(numbers["misses"]) and numbers["misses"] > 0
    assert text("entries") == str(numbers["entries"])
    assert text("hit-rate") == f"{100 * numbers['hit_rate']:.1f}%"
    assert text("cost-saved") == f"${numbers['cost_saved_usd']:.4f}"
    for outcome in ("hit", "miss"):
        for p in ("p50", "p95", "p99"):  # shown to 0.1 ms (JavaScript rounds half up)
            shown, value = float(text(f"{outcome}-{p}")), numbers["latency_ms"][outcome][p]
            assert abs(shown - value) <= 0.05 + 1e-9, (outcome, p, shown, value)
    words = {"static": "answers served by distance alone",
             "pair-model": "answers judged by the trained model"}  # fmt: skip
    assert text("decision") == words[numbers["decision"]["stage"]]
    assert text("llm") == "simulated LLM: answers are made up"  # the replica simulates
    assert text("price-per-call") == f"at ${numbers['llm']['price_per_call_usd']} a call"
    wrong = numbers["wrong_answer_rate"]  # the audited wrong-answer rate, with its interval
    assert text("wrong-rate") == f"{100 * wrong['estimate']:.1f}%"
    assert f"audits: {wrong['audits']}" in text("wrong-interval")
    rows = browser.find_elements(By.CSS_SELECTOR, "#namespaces tbody tr")
    assert [row.find_elements(By.TAG_NAME, "td")[0].text for row in rows] == ["default"]
    assert rows[0].find_elements(By.TAG_NAME, "td")[1].text == str(numbers["entries"])
    # the closest misses name the cached question they came near; the most served lead
    misses = browser.find_elements(By.CSS_SELECTOR, "#closest-misses tbody tr")
    assert misses, "near misses are listed"
    nearest = {row.find_elements(By.TAG_NAME, "td")[2].text for row in misses}
    assert nearest & {p for p, _ in FAQ}
    served = browser.find_elements(By.CSS_SELECTOR, "#most-served tbody tr")
    assert served and int(served[0].find_elements(By.TAG_NAME, "td")[2].text) >= 2
    # everything the page loaded came from the service itself (no CDN)
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded and all(name.startswith(busy.url) for name in loaded), loaded

    # it refreshes live: new traffic shows without a reload
    busy.http.post("/v1/query", json={"prompt": "Where is my parcel?"},
                   headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
    wait_until(lambda: text("requests") == str(len(TRAFFIC) + 1), 15, message="a live refresh")
    # a test leaves the tree as it found it: the screenshot goes to its temporary folder
    screenshot = tmp_path / "dashboard.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000


def test_dashboard_page_and_assets_are_served_without_a_build(busy: CacheService) -> None:
    page = httpx.get(f"{busy.url}/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("dashboard.js", "dashboard.css"):
        assert httpx.get(f"{busy.url}/dashboard/static/{asset}").status_code == 200
    assert httpx.get(f"{busy.url}/dashboard/static/../app.py").status_code == 404
