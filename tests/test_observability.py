"""The Grafana dashboard and the compose observability profile: the dashboard's queries name
metrics the service exports, and a real Prometheus (Debian's) scraping a real replica
answers every one of them."""

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.embedded_redis import free_port
from tests.helpers import CacheService, wait_until

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "dyna-cache.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
_METRIC = re.compile(r"\bdynacache_[a-z_]+\b")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert queries, "the dashboard has queries"
    return queries


def exported_series(service: CacheService) -> set[str]:
    """Every series name /metrics declares, whether or not it has samples yet (a counter
    as ``<name>_total``, a histogram as its ``_bucket``, ``_sum`` and ``_count``)."""
    text = service.http.get("/metrics").text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names


def traffic(service: CacheService) -> None:
    for prompt in ("How do I reset my password?", "How can I reset my password?",
                   "What are your opening hours?", "When are you open?"):  # fmt: skip
        assert service.query(prompt).status_code == 200


def test_dashboard_json_names_only_metrics_the_service_exports(service: CacheService) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "dyna-cache" and dashboard["panels"]
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for shown in ("hit rate", "stage", "saved", "sync"):  # what an operator asked for
        assert shown in titles, shown
    traffic(service)
    exported = exported_series(service)
    named = {name for query in dashboard_queries() for name in _METRIC.findall(query)}
    assert len(named) >= 10
    missing = named - exported
    assert not missing, f"not exported by /metrics: {sorted(missing)}"


def test_compose_profile_and_provisioning_point_at_the_files() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"], name
    for name in ("redis", "api", "lb"):
        assert "profiles" not in services[name], f"{name} must start without a profile"
    volumes = [volume for name in ("prometheus", "grafana") for volume in services[name]["volumes"]]
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in volumes}
    for source in mounts:
        assert (ROOT / source).exists(), source
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/dyna-cache.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == mounts["./deploy/grafana/dashboards"]
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"][0]
    uids = {panel["datasource"]["uid"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
    assert uids == {datasource["uid"]}
    if PROMTOOL is not None:
        checked = subprocess.run([PROMTOOL, "check", "config", str(PROMETHEUS_CONFIG)],
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture
def prometheus(service: CacheService, tmp_path: Path) -> Iterator[str]:
    """Debian's Prometheus scraping ``service`` every 200 ms; its base URL."""
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "200ms", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "dyna-cache",
                            "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}]}],
    }))  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def scraping() -> bool:
            try:  # 503 with a plain body while it starts
                targets = httpx.get(f"{url}/api/v1/targets", timeout=2).json()
            except (httpx.HTTPError, ValueError):
                return False
            active = targets["data"]["activeTargets"]
            return bool(active) and active[0]["health"] == "up"

        wait_until(scraping, 60, 0.2, "prometheus scraping the replica")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_prometheus_answers_every_dashboard_query(service: CacheService, prometheus: str) -> None:
    traffic(service)
    numbers = wait_until(lambda: (s := service.http.get("/v1/stats").json())["requests"] == 4
                         and s, message="stats flushed")  # fmt: skip

    def scraped_after_traffic() -> bool:
        found = query(prometheus, 'sum(dynacache_requests_total{outcome=~"hit|miss"})')
        return bool(found) and float(found[0]["value"][1]) == 4

    wait_until(scraped_after_traffic, 30, 0.2, "a scrape after the traffic")
    # a second scrape, so rate() has two points after the traffic
    wait_until(lambda: len(query(prometheus, "dynacache_requests_total[5s]")[0]["values"]) >= 3,
               30, 0.2, "two more scrapes")  # fmt: skip
    for expr in dashboard_queries():
        grafana_free = expr.replace("$__rate_interval", "1m")
        assert query(prometheus, grafana_free) is not None
    hit_rate = dashboard_queries()[0].replace("$__rate_interval", "1m")
    found = query(prometheus, hit_rate)
    assert found, "the hit-rate panel has a value"
    assert float(found[0]["value"][1]) == pytest.approx(numbers["hit_rate"], abs=0.01)
    stages = query(prometheus, "sum by (stage) (dynacache_stage_seconds_count)")
    assert {row["metric"]["stage"] for row in stages} >= {"embed", "search", "redis", "llm"}
