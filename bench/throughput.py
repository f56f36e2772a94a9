"""Semantic-HIT throughput over HTTP against the embedder alone, in one sitting.

1,000 QQP questions are stored; each request asks one of them with " ?" for "?" (tokenised
the same, so every request takes the semantic path: embed, FAISS, confirm in Redis). wrk
(Debian's package) sends them at 1, 16 and 64 concurrent clients to a replica configured
as shipped (one embedding lane per core) and, for comparison, as the previous release was
(one lane on every core, micro-batching up to 64). Beside each, the embedder alone in this
process, as the replica runs it (the same lanes, the same sessions) with as many texts in
flight as there are clients: what the replica cannot exceed on these cores. The issue's
target: the replica's HITs/s >= 90 % of that, at 16 and 64 clients.
Writes bench/results/throughput.json.   python bench/throughput.py [--seconds 10]
"""

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, distinct_questions, write_results
from index.embedding.worker import EmbeddingWorker
from service.assembly import embedding_lanes, load_lane_embedders
from service.embedded_redis import EmbeddedRedis
from service.settings import Settings

# (label, the replica's settings): as shipped, and as the previous release ran
CONFIGURATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("lanes", {}),
    ("one lane, micro-batching", {"embed_lanes": 1, "embed_max_batch": 64}),
)

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
    return wrk_figures(output)


def wrk_figures(output: str) -> dict[str, float]:
    """Rate, p50, p99 and non-2xx count from wrk's ``--latency`` output."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    # the percentile lines of --latency, not a "+/- Stdev" column that ends in 50% or 99%
    p50 = to_ms(re.search(r"^\s*50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"^\s*99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
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


def embedder_alone(
    texts: list[str], in_flight: int, seconds: float, replica_settings: dict[str, Any]
) -> float:
    """Texts/s of the embedder in this process as a replica with these settings runs it,
    ``in_flight`` texts at a time (each caller embeds the next text when its own is done)."""
    settings = Settings(**replica_settings)
    lanes, threads = embedding_lanes(settings)
    model, lane_model = load_lane_embedders(settings, lanes, threads)

    async def run() -> float:
        worker = EmbeddingWorker(
            model, lanes, settings.embed_max_batch, settings.embed_max_wait_ms, lane_model
        )
        done, deadline = 0, time.perf_counter() + seconds

        async def caller(start: int) -> None:
            nonlocal done
            position = start
            while time.perf_counter() < deadline:
                await worker.embed_one(texts[position % len(texts)])
                position += in_flight
                done += 1

        started = time.perf_counter()
        try:
            await asyncio.gather(*(caller(i) for i in range(in_flight)))
        finally:
            await worker.close()
        return done / (time.perf_counter() - started)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", default="1,16,64")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    questions = distinct_questions(1000, seed=8)
    texts = [q.replace("?", " ?") if "?" in q else q + " ?" for q in questions]
    results: dict[str, Any] = {"seconds_per_point": args.seconds, "runs": []}
    with tempfile.TemporaryDirectory(prefix="dc-bench-tp-") as folder:
        script, bodies = semantic_lookup_inputs(Path(folder), questions)
        redis = EmbeddedRedis(Path(folder) / "redis", appendonly=False).start()
        try:
            for label, replica_settings in CONFIGURATIONS:
                with ServiceProcess(
                    redis.url, log_level="error", replica_id=f"tp-{len(results['runs'])}",
                    **replica_settings,
                ) as service:  # fmt: skip
                    if not results["runs"]:
                        service.store(
                            [{"prompt": q, "response": f"answer {i}"}
                             for i, q in enumerate(questions)]
                        )  # fmt: skip
                    for clients in (int(c) for c in args.clients.split(",")):
                        before = service.http.get("/v1/stats").json()
                        figures = run_wrk(service.url, clients, args.seconds, script, bodies)
                        after = service.http.get("/v1/stats").json()
                        lookups = after["requests"] - before["requests"]
                        figures["hit_fraction"] = (
                            round((after["hits"] - before["hits"]) / lookups, 4) if lookups else 0.0
                        )
                        alone = embedder_alone(texts, clients, args.seconds, replica_settings)
                        figures["embedder_alone_per_s"] = round(alone, 1)
                        figures["ratio_to_embedder"] = round(figures["requests_per_s"] / alone, 3)
                        results["runs"].append({"replica": label, "clients": clients, **figures})
                        print(
                            f"{label:>24}, {clients:>2} clients: "
                            f"{figures['requests_per_s']:.0f} HITs/s (embedder alone "
                            f"{alone:.0f}/s: {figures['ratio_to_embedder']:.0%}), p50 "
                            f"{figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
                            f"hits {figures['hit_fraction']:.1%}"
                        )
        finally:
            redis.stop()
    write_results("throughput", results)


if __name__ == "__main__":
    main()
