"""Per-end-user scope on a multi-user trace: what ``user`` costs in hit rate, and what
``shared`` costs in answers served to the wrong user.

The trace (seeded): ``--users`` end users of one tenant each send ``--turns`` questions,
in a random interleaving. A share ``--personal`` of them are *personal* ("What is my account
balance?" in one of several wordings, whose right answer differs per user); the rest are
*general* (distinct QQP questions with their own paraphrase, drawn from a pool all users
share, whose answer is the same for everyone). Each question goes through
``/v1/chat/completions`` with the user in OpenAI's ``user`` field, against a replica with
the simulated LLM, once per mode:

- hit rate: HITs / requests;
- general hit rate: HITs among general questions (what sharing gains);
- wrong-user answers: personal questions served an answer made for another user (the leak
  per-user scope exists to stop).

Writes bench/results/user_scope.json.

    python bench/user_scope.py [--users 20] [--turns 30] [--personal 0.3] [--seed 5]
"""

import argparse
import random
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, qqp_pairs, write_results

PERSONAL = [
    "What is my account balance?", "What's my account balance?",
    "How much money is in my account?", "Can you tell me my account balance?",
    "When is my next payment due?", "When is my next bill due?",
    "What is my current credit limit?", "What's my credit limit right now?",
]  # fmt: skip


def general_pool(count: int, seed: int) -> list[tuple[str, str]]:
    """QQP duplicate pairs: a question and its paraphrase, as general questions."""
    pairs = [(p["q1"], p["q2"]) for p in qqp_pairs() if p["duplicate"]]
    random.Random(seed).shuffle(pairs)
    return pairs[:count]


def trace(users: int, turns: int, personal: float, seed: int) -> list[tuple[str, str, bool]]:
    """(user, question, personal?) in the order they arrive."""
    rng = random.Random(seed)
    pool = general_pool(max(20, users * turns // 6), seed)
    requests = []
    for user in range(users):
        for _ in range(turns):
            if rng.random() < personal:
                requests.append((f"user-{user}", rng.choice(PERSONAL), True))
            else:
                q1, q2 = rng.choice(pool)
                requests.append((f"user-{user}", rng.choice((q1, q2)), False))
    rng.shuffle(requests)
    return requests


def run(mode: str, requests: list[tuple[str, str, bool]]) -> dict[str, Any]:
    made_for: dict[str, str] = {}  # entry id → the user whose MISS stored it
    hits = general_hits = general = wrong_user = personal_hits = 0
    with (
        ServiceProcess(sim_latency_ms=0, scope_mode=mode) as service,
        httpx.Client(base_url=service.url, timeout=30) as client,
    ):
        for user, question, is_personal in requests:
            body = {"model": "m", "user": user,
                    "messages": [{"role": "user", "content": question}]}  # fmt: skip
            answer = client.post("/v1/chat/completions", json=body)
            answer.raise_for_status()
            entry = answer.headers.get("X-Cache-Entry", "")
            hit = answer.headers["X-Cache"] == "HIT"
            if not hit:
                made_for[entry] = user
            hits += hit
            if is_personal:
                personal_hits += hit
                wrong_user += hit and made_for.get(entry) != user
            else:
                general += 1
                general_hits += hit
    total = len(requests)
    return {
        "mode": mode, "requests": total, "hit_rate": round(hits / total, 4),
        "general_hit_rate": round(general_hits / max(1, general), 4),
        "personal_requests": total - general, "personal_hits": personal_hits,
        "personal_answers_to_the_wrong_user": wrong_user,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--personal", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    requests = trace(args.users, args.turns, args.personal, args.seed)
    results = {"parameters": vars(args), "modes": [run(mode, requests)
                                                   for mode in ("shared", "user")]}  # fmt: skip
    for mode in results["modes"]:
        print(mode)
    write_results("user_scope", results)


if __name__ == "__main__":
    main()
