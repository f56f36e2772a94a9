"""Fuzz the service against its own OpenAPI schema with schemathesis (``make fuzz``).

Starts a replica (embedded Redis, simulated LLM at 0 ms, an admin token so that every
endpoint, the admin API included, can be called), creates a tenant, and runs schemathesis
over every operation with the admin token, checking: no 5xx, status codes, content types,
headers and bodies as documented. Then sends the hostile bodies of ``bench/hostile.py``
(what schemathesis's generators never reached: integers past 64 bits, deep nesting, lone
surrogates, backtracking bait), and NaN, Infinity and numbers past 1e308 in every client
API's pass-through fields (``non_finite_bodies``) to a second replica whose upstream is real
(the fake OpenAI/Anthropic-compatible one on 127.0.0.1): each must get a 4xx or 2xx, never
a 5xx or a dropped connection. The schema run covers every operation, the three client
APIs (Chat Completions, Responses, Messages) with their strict request models included.
Writes bench/results/fuzz.json (cases tried, failures).

    python bench/fuzz.py [--examples 50]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, write_results
from bench.hostile import hostile_bodies, non_finite_bodies
from tests.fake_upstream import FakeUpstream

TOKEN = "fuzz-admin-token"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=50, help="per operation")
    args = parser.parse_args()
    schemathesis = Path(sys.executable).parent / "schemathesis"
    with (
        tempfile.TemporaryDirectory(prefix="dc-fuzz-") as folder,
        ServiceProcess(admin_token=TOKEN, sim_latency_ms=0, log_level="error") as service,
    ):
        service.http.post(
            "/v1/admin/tenants",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"namespace": "fuzz"},
        ).raise_for_status()
        report = Path(folder) / "report.json"
        run = subprocess.run(
            [str(schemathesis), "run", f"{service.url}/openapi.json",
             "-H", f"Authorization: Bearer {TOKEN}", "--checks", CHECKS,
             "--max-examples", str(args.examples), "--seed", "1",
             "--request-timeout", "30", "--report", "ndjson",
             "--report-ndjson-path", str(report)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        summary = run.stdout.strip().splitlines()
        events = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
        hostile = send_hostile(service, hostile_bodies())
    upstream = FakeUpstream()
    upstream.start()
    try:
        with ServiceProcess(
            admin_token=TOKEN, log_level="error", llm="openai",
            openai_base_url=upstream.base_url, openai_api_key="sk-fuzz",
            anthropic_base_url=upstream.base_url, anthropic_api_key="ak-fuzz",
        ) as real:  # fmt: skip
            hostile += send_hostile(real, non_finite_bodies())
    finally:
        upstream.stop()
    Path("/tmp/fuzz_out.txt").write_text(run.stdout)
    print("\n".join(summary[-25:]))
    results: dict[str, Any] = {
        "schemathesis_exit_code": run.returncode,
        "examples_per_operation": args.examples,
        "checks": CHECKS.split(","),
        **count_cases(events),
        "summary": summary[-12:],
        "hostile_bodies": hostile,
    }
    write_results("fuzz", results)
    failed = [case for case in hostile if not case["ok"]]
    for case in failed:
        print(f"hostile body failed: {case}")
    sys.exit(run.returncode or (1 if failed else 0))


def send_hostile(
    service: ServiceProcess, bodies: list[tuple[str, str, bytes]]
) -> list[dict[str, Any]]:
    """Each hostile body once: its status and time; ok when a 2xx or 4xx came back."""
    results = []
    headers = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    for name, path, body in bodies:
        started = time.perf_counter()
        try:
            status = service.http.post(path, content=body, headers=headers, timeout=30).status_code
        except httpx.HTTPError as error:
            status = 0
            name = f"{name} ({type(error).__name__})"
        seconds = round(time.perf_counter() - started, 3)
        ok = 200 <= status < 300 or 400 <= status < 500
        results.append({"case": name, "path": path, "status": status, "seconds": seconds,
                        "ok": ok})  # fmt: skip
    return results


def count_cases(events: list[dict[str, Any]]) -> dict[str, int]:
    """Cases tried and failures found, from schemathesis's ndjson event stream."""
    cases = failures = operations = 0
    for event in events:
        for name, body in event.items():
            if name == "ScenarioFinished" and isinstance(body, dict):
                operations += 1
                recorder = body.get("recorder", {})
                cases += len(recorder.get("cases", {}))
                for checks in recorder.get("checks", {}).values():
                    failures += sum(1 for check in checks if check.get("status") == "FAILURE")
    return {"operations": operations, "cases": cases, "failures": failures}


if __name__ == "__main__":
    main()
