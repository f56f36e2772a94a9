"""Calibrate the cache on your own labelled pairs: which threshold (and verifier cut) reach
a precision, and what recall that costs.

    python -m training.calibrate --pairs my_pairs.jsonl --target-precision 0.9
        [--holdout 0.4] [--sample 2000] [--seed 7]
        [--tenant acme --redis-url redis://...]   # write the chosen point to its settings

Pairs are ``{"q1", "q2", "duplicate"}`` JSON lines. They are split by question (seeded) into
a part to fit on and a held-out part; on the fit part, each q1 is stored and each q2 looked
up (in samples of ``--sample`` pairs, as the cache would meet them), and the point of
highest recall whose precision's 95% lower bound reaches the target is chosen, for the
static threshold and for the verifier (radius and cut). Both are then measured on the
held-out part, which took no part in the choice. With ``--tenant`` each point is written as
its own stage's tenant knobs (``threshold``; ``verifier_radius``, ``verifier_cut``), which
apply only when that stage decides.
"""

import argparse
import asyncio
import hashlib
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.decision.verifier import Verifier
from index.embedding.embedder import load_embedder
from training.pair_data import DuplicateClusters, Pair, distinct_pairs, normal_form, read_pairs
from training.pair_protocol import (
    CUTS,
    FINE_RADII,
    Embed,
    Lookups,
    Point,
    best_point,
    look_up_in_chunks,
    point,
    remembered,
    static_curve,
    verifier_curve,
    verifier_probabilities,
)


@dataclass(frozen=True)
class Calibrated:
    policy: str  # static | verifier
    chosen: Point  # on the fit part
    held_out: Point  # the same radius and cut, on the held-out part


def split_by_question(
    pairs: list[Pair], holdout: float, seed: int
) -> tuple[list[Pair], list[Pair]]:
    """(fit, held out): a pair is held out when both its questions hash into the holdout
    share, fit when neither does; pairs that straddle are left out."""

    def held(question: str) -> bool:
        digest = hashlib.sha256(f"{seed}\x1f{normal_form(question)}".encode()).digest()
        return int.from_bytes(digest[:4]) / 2**32 < holdout

    fit, held_out = [], []
    for pair in pairs:
        sides = held(pair.q1), held(pair.q2)
        if all(sides):
            held_out.append(pair)
        elif not any(sides):
            fit.append(pair)
    return fit, held_out


def calibrate(
    pairs: list[Pair],
    embed: Embed,
    target_precision: float,
    verifier: Verifier | None,
    holdout: float = 0.4,
    sample: int = 2000,
    seed: int = 7,
) -> list[Calibrated]:
    pairs = list(pairs)
    clusters = DuplicateClusters(pairs)  # the closure of the user's own duplicate labels
    random.Random(seed).shuffle(pairs)
    fit, held_out = split_by_question(distinct_pairs(pairs), holdout, seed)
    if not fit or not held_out:
        raise ValueError("too few pairs to split into a fit and a held-out part")
    embed = remembered(embed, [q for p in fit + held_out for q in (p.q1, p.q2)])
    fit_lookups = look_up_in_chunks(fit, embed, sample, clusters)
    held_lookups = look_up_in_chunks(held_out, embed, sample, clusters)
    results = []
    static = best_point(static_curve(fit_lookups, FINE_RADII), target_precision, cautious=True)
    if static is not None:
        held = point(held_lookups, held_lookups.distance < static.radius, static.radius, None)
        results.append(Calibrated("static", static, held))
    if verifier is not None:
        fit_p = verifier_probabilities(verifier, fit_lookups)
        points = [p for r in FINE_RADII for p in verifier_curve(fit_lookups, fit_p, r, CUTS)]
        chosen = best_point(points, target_precision, cautious=True)
        if chosen is not None:
            results.append(
                Calibrated("verifier", chosen, _verified(verifier, held_lookups, chosen))
            )
    return results


def _verified(verifier: Verifier, lookups: Lookups, chosen: Point) -> Point:
    assert chosen.cut is not None
    probabilities = verifier_probabilities(verifier, lookups)
    return verifier_curve(lookups, probabilities, chosen.radius, [chosen.cut])[0]


def _describe(result: Calibrated) -> str:
    c, h = result.chosen, result.held_out
    cut = f", verifier cut {c.cut:.2f}" if c.cut is not None else ""
    return (
        f"{result.policy:>8}: threshold {c.radius:.3f}{cut} — fit precision {c.precision:.3f}"
        f" recall {c.recall:.3f}; held out precision {h.precision:.3f} recall {h.recall:.3f}"
        f" ({h.hits} hits)"
    )


def tenant_knobs(results: list[Calibrated]) -> dict[str, float]:
    """Each calibrated stage's point as that stage's own tenant knobs: the static stage's
    ``threshold``, the verifier's ``verifier_radius`` and ``verifier_cut``. The pair model
    keeps its build's operating point (``dyna-cache fine-tune`` moves it)."""
    knobs: dict[str, float] = {}
    for result in results:
        if result.policy == "static":
            knobs["threshold"] = result.chosen.radius
        elif result.chosen.cut is not None:
            knobs |= {"verifier_radius": result.chosen.radius, "verifier_cut": result.chosen.cut}
    return knobs


async def _write_tenant(redis_url: str, ns: str, knobs: dict[str, float]) -> None:
    from index.store.connection import connect
    from index.store.tenant_records import TenantRecords
    from service.tenancy.tenants import TenantStore

    client = connect(redis_url, 5.0)
    try:
        tenants = TenantStore(TenantRecords(client))
        settings = await tenants.settings_of(ns)
        if settings is None:
            raise SystemExit(f"no tenant {ns!r} at {redis_url}")
        await tenants.update_settings(ns, settings.model_copy(update=knobs))
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.calibrate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--target-precision", type=float, required=True)
    parser.add_argument("--holdout", type=float, default=0.4)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--verifier", type=Path, default=Path("models/verifier/verifier.npz"))
    parser.add_argument("--tenant", help="write the chosen point to this tenant's settings")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    args = parser.parse_args(argv)
    if not 0 < args.target_precision < 1 or not 0 < args.holdout < 1:
        parser.error("--target-precision and --holdout must be in (0, 1)")
    verifier = Verifier.load(args.verifier) if args.verifier.exists() else None
    embedder = load_embedder("onnx", None)
    pairs = list(read_pairs(args.pairs))
    results = calibrate(
        pairs, embedder.encode, args.target_precision, verifier,
        args.holdout, args.sample, args.seed,
    )  # fmt: skip
    print(f"{len(pairs)} pairs, target precision {args.target_precision}")
    if not results:
        print("no threshold reaches the target on these pairs (with 95% confidence)")
        return 1
    for result in results:
        print(_describe(result))
        if result.held_out.precision < args.target_precision:
            print(f"  warning: {result.policy} misses the target on the held-out part "
                  f"({result.held_out.hits} hits): more labelled pairs would tell")  # fmt: skip
    if args.tenant:
        knobs = tenant_knobs(results)
        asyncio.run(_write_tenant(args.redis_url, args.tenant, knobs))
        written = ", ".join(f"{name}={value}" for name, value in knobs.items())
        print(f"wrote {written} to tenant {args.tenant!r}: each applies when its stage "
              "decides; the pair model keeps its build's operating point")  # fmt: skip
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
