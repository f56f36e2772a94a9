"""A small labelled data set the project writes itself, shaped like ../shared/data
(``qqp_open.jsonl``: ``{"q1", "q2", "duplicate"}``; ``stsb_train_dev.jsonl``: with ``score``
and ``split``), so that the training code, calibration and parity checks are tested on any
machine, with no copy of QQP or STS-B in the repository.

    python -m training.fixture OUT_DIR

Questions come from templates over topics; duplicates are rewordings of one question, and
non-duplicates the look-alikes a cache must not serve: another action or object, a changed
number, exchanged names, an antonym. Deterministic for a seed.
"""

import argparse
import json
import random
from pathlib import Path

OBJECTS = (
    "password", "invoice", "subscription", "account", "order", "refund", "laptop", "phone",
    "router", "printer", "email address", "username", "profile picture", "credit card",
    "bank account", "passport", "visa", "driving licence", "car insurance", "mortgage",
    "garden", "bicycle", "kitchen sink", "washing machine", "website", "database",
    "python script", "spreadsheet", "presentation", "resume",
)  # fmt: skip
ACTIONS = (
    ("reset", "restore"), ("cancel", "stop"), ("change", "modify"), ("delete", "remove"),
    ("update", "refresh"), ("clean", "tidy"), ("fix", "repair"), ("renew", "extend"),
    ("sell", "get rid of"), ("protect", "secure"),
)  # fmt: skip
FRAMES_SAME = (
    "How do I {verb} my {obj}?", "How can I {verb} my {obj}?",
    "What is the best way to {verb} my {obj}?", "What steps do I take to {verb} my {obj}?",
    "Can you tell me how to {verb} my {obj}?",
)  # fmt: skip
PLACES = ("France", "Germany", "Spain", "Italy", "Poland", "Japan", "Brazil", "Canada",
          "Egypt", "India", "Mexico", "Norway")  # fmt: skip
ANTONYMS = (("best", "worst"), ("cheapest", "most expensive"), ("fastest", "slowest"),
            ("easiest", "hardest"))  # fmt: skip


def pairs(seed: int = 5) -> list[dict[str, object]]:
    """Labelled pairs, each question in one pair only (as the lookup protocol keeps them):
    about half duplicates; the rest mostly other questions on the same subject, and a
    minority of look-alikes (another action, a changed number, exchanged names, an
    antonym)."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    seen: set[str] = set()

    def add(q1: str, q2: str, duplicate: bool) -> None:
        if q1 not in seen and q2 not in seen and q1 != q2:
            seen.update((q1, q2))
            rows.append({"q1": q1, "q2": q2, "duplicate": duplicate})

    frames = list(FRAMES_SAME)
    for i, obj in enumerate(OBJECTS):
        for j, verb in enumerate(ACTIONS):
            first, second = frames[(i + j) % 5], frames[(i + j + 1) % 5]
            add(first.format(verb=verb[0], obj=obj), second.format(verb=verb[1], obj=obj), True)
        place, elsewhere = PLACES[i % len(PLACES)], PLACES[(i + 5) % len(PLACES)]
        # look-alikes: another action, another place; then another question on the object
        add(f"Where can I buy a cheap {obj}?", f"Where can I sell a cheap {obj}?", False)
        add(f"Is a new {obj} worth it in {place}?", f"Is a new {obj} worth it in {elsewhere}?",
            False)  # fmt: skip
        add(f"How long does a {obj} usually last?", f"How much does a new {obj} cost?", False)
    for i, a in enumerate(PLACES):
        for b in PLACES[i + 1 :]:
            add(f"What is the distance from {a} to {b}?", f"How far is {a} from {b}?", True)
            add(f"Why did {a} go to war with {b}?", f"Why did {b} go to war with {a}?", False)
            add(f"What language do people speak in {a} and {b}?",
                f"What is the weather like in {b} in winter?", False)  # fmt: skip
        for word, opposite in ANTONYMS:
            add(f"What is the {word} way to travel in {a}?",
                f"Which is the {word} way to get around {a}?", True)  # fmt: skip
            add(f"What is the {word} month to visit {a}?",
                f"What is the {opposite} month to visit {a}?", False)  # fmt: skip
    for dose in range(50, 1050, 50):
        add(f"Is it safe to take {dose} mg of ibuprofen?",
            f"Can I safely take {dose} mg of ibuprofen?", True)  # fmt: skip
        more = dose + rng.choice((50, 100, 200))
        add(f"Is {dose} mg of paracetamol too much?", f"Is {more} mg of paracetamol too much?",
            False)  # fmt: skip
    rng.shuffle(rows)
    return rows


def write(out: Path, seed: int = 5) -> Path:
    """Write ``qqp_open.jsonl`` and ``stsb_train_dev.jsonl`` into ``out``; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = pairs(seed)
    (out / "qqp_open.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rng = random.Random(seed + 1)
    stsb = [
        {**row, "score": 4.6 if row["duplicate"] else 1.8, "split": rng.choice(("train", "dev"))}
        for row in rng.sample(rows, len(rows) // 4)
    ]
    (out / "stsb_train_dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stsb))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=5)
    write(parser.parse_args().out, parser.parse_args().seed)


if __name__ == "__main__":
    main()
