"""Semantic-HIT throughput over HTTP: requests/s and p99 at 1, 16 and 64 concurrent clients,
micro-batching on (``embed_max_batch=64``) vs off (1), measured with wrk (Debian's package).

1,000 QQP questions are stored; each request asks one of them with " ?" for "?" (tokenised
the same, so every request takes the semantic path: embed, FAISS, confirm in Redis).
Writes bench/results/throughput.json.   python bench/throughput.py [--seconds 10]
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, distinct_questions, write_results
from service.embedded_redis import EmbeddedRedis

LUA = r"""
local bodies, i = {}, 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/query", {["Content-Type"] = "application/json"}, bodies[i])
end
"""


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, clients: int, seconds: int, script: Path, bodies: Path) -> dict[str, float]:
    output = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script), url,
         "--", str(bodies)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_s": rate,
        "p50_ms": p50,
        "p99_ms": p99,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def semantic_lookup_inputs(folder: Path, questions: list[str]) -> tuple[Path, Path]:
    """wrk's script and request bodies: each question with " ?" for "?" (tokenised the
    same, so every request takes the semantic path), ``cache: only``."""
    script, bodies = folder / "rotate.lua", folder / "bodies.jsonl"
    script.write_text(LUA)
    bodies.write_bytes(
        b"\n".join(
            orjson.dumps(
                {"prompt": q.replace("?", " ?") if "?" in q else q + " ?", "cache": "only"}
            )
            for q in questions
        )
    )
    return script, bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", default="1,16,64")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    questions = distinct_questions(1000, seed=8)
    results: dict[str, Any] = {"seconds_per_point": args.seconds, "runs": []}
    with tempfile.TemporaryDirectory(prefix="dc-bench-tp-") as folder:
        script, bodies = semantic_lookup_inputs(Path(folder), questions)
        redis = EmbeddedRedis(Path(folder) / "redis", appendonly=False).start()
        try:
            for batching, max_batch in (("on", 64), ("off", 1)):
                with ServiceProcess(
                    redis.url,
                    embed_max_batch=max_batch,
                    log_level="error",
                    replica_id=f"tp-{batching}",
                ) as service:
                    if batching == "on":
                        service.store(
                            [
                                {"prompt": q, "response": f"answer {i}"}
                                for i, q in enumerate(questions)
                            ]
                        )
                    for clients in (int(c) for c in args.clients.split(",")):
                        before = service.http.get("/v1/stats").json()
                        figures = run_wrk(service.url, clients, args.seconds, script, bodies)
                        after = service.http.get("/v1/stats").json()
                        lookups = after["requests"] - before["requests"]
                        figures["hit_fraction"] = (
                            round((after["hits"] - before["hits"]) / lookups, 4) if lookups else 0.0
                        )
                        results["runs"].append(
                            {"batching": batching, "clients": clients, **figures}
                        )
                        print(
                            f"batching {batching:>3}, {clients:>2} clients: "
                            f"{figures['requests_per_s']:.0f} req/s, p50 {figures['p50_ms']} "
                            f"ms, p99 {figures['p99_ms']} ms, hits {figures['hit_fraction']:.1%}"
                        )
        finally:
            redis.stop()
    write_results("throughput", results)


if __name__ == "__main__":
    main()
