"""Fuzz the service against its own OpenAPI schema with schemathesis (``make fuzz``).

Starts a replica (embedded Redis, simulated LLM at 0 ms, an admin token so that every
endpoint, the admin API included, can be called), creates a tenant, and runs schemathesis
over every operation with the admin token, checking: no 5xx, status codes, content types,
headers and bodies as documented. Writes bench/results/fuzz.json (cases tried, failures).

    python bench/fuzz.py [--examples 50]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, write_results

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
    Path("/tmp/fuzz_out.txt").write_text(run.stdout)
    print("\n".join(summary[-25:]))
    results: dict[str, Any] = {
        "schemathesis_exit_code": run.returncode,
        "examples_per_operation": args.examples,
        "checks": CHECKS.split(","),
        **count_cases(events),
        "summary": summary[-12:],
    }
    write_results("fuzz", results)
    sys.exit(run.returncode)


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
