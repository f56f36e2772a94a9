"""The pair model's training loop: batches of look-alike lengths, AdamW with a linear
warm-up and decay, binary cross-entropy on the logit."""

import logging
import math
import random
import time

import numpy as np

from training.pair_rows import Row
from training.pair_scorer import Scorer

log = logging.getLogger(__name__)

BATCH = 32


def _batches(rows: list[Row], rng: random.Random) -> list[list[Row]]:
    """Batches of rows of similar length, in a random order: padding to the longest of a
    batch of look-alike lengths wastes little (about twice the pairs/s of random batches)."""
    by_length = sorted(rows, key=lambda row: len(row[0]) + len(row[1]) + rng.random())
    batches = [by_length[i : i + BATCH] for i in range(0, len(by_length), BATCH)]
    rng.shuffle(batches)
    return batches


def fit(scorer: Scorer, rows: list[Row], epochs: float, lr: float, seed: int) -> None:
    torch = scorer.torch
    rng = random.Random(seed)
    per_epoch = math.ceil(len(rows) / BATCH)
    steps = max(1, math.ceil(per_epoch * epochs))
    warmup = max(1, steps // 20)
    optimiser = torch.optim.AdamW(scorer.parameters(), lr=lr, weight_decay=0.01)

    def rate(step: int) -> float:  # linear warm-up, then linear decay to 0
        return min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)
    scorer.encoder.train()
    started, losses = time.perf_counter(), []
    batches: list[list[Row]] = []
    for step in range(steps):
        if not batches:
            batches = _batches(rows, rng)
        a, b, y = zip(*batches.pop(), strict=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            scorer.logits(a, b), torch.tensor(y)
        )
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(scorer.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - started
            left = elapsed / (step + 1) * (steps - step - 1)
            log.info("pair model: step %d/%d, loss %.3f, %.0f s, ~%.0f s left",
                     step + 1, steps, float(np.mean(losses[-50:])), elapsed, left)  # fmt: skip
    scorer.encoder.eval()
