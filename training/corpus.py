"""Texts for embedding parity checks: short, long (> 128 tokens), non-English, code, and
real question pairs from ../shared/data when present."""

import json
import os
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DYNACACHE_DATA_DIR", ROOT.parent / "shared" / "data"))

_SHORT = ["hi", "Paris?", "ok thanks", "refund", "2 + 2", "GPU vs CPU", "why?", "cancel order"]
_NON_ENGLISH = [
    "Quelle est la capitale de la France ?",
    "¿Cómo puedo cancelar mi suscripción?",
    "Wie spät ist es in Berlin?",
    "東京は日本の首都ですか？",
    "Как приготовить борщ?",
    "ما هي عاصمة مصر؟",
    "आज मौसम कैसा है?",
    "Qual è il fiume più lungo d'Italia?",
    "서울의 인구는 얼마입니까?",
    "Hur många invånare har Sverige?",
]
_CODE = [
    "def add(a, b):\n    return a + b",
    "SELECT name FROM users WHERE id = 42;",
    "for (int i = 0; i < n; i++) { sum += a[i]; }",
    "const x = await fetch('/api/v1/items');",
    'fn main() { println!("hello"); }',
    "git rebase -i HEAD~3",
    "kubectl get pods -n prod",
    "import numpy as np\nx = np.linspace(0, 1, 100)",
]
_LONG_SEED = (
    "The quarterly report describes revenue growth across three regions, the impact of "
    "currency movements, new hires in engineering and support, and the plan to migrate the "
    "billing system to a new provider before the end of the fiscal year. "
)


def qqp_questions(count: int, seed: int = 5) -> list[str]:
    path = DATA / "qqp_open.jsonl"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as lines:
        pairs = [json.loads(line) for _, line in zip(range(5000), lines, strict=False)]
    rng = random.Random(seed)
    return [pair["q1"] for pair in rng.sample(pairs, count)]


def qqp_pairs(count: int, seed: int = 9) -> list[tuple[str, str]]:
    path = DATA / "qqp_open.jsonl"
    with open(path, encoding="utf-8") as lines:
        pairs = [json.loads(line) for line in lines]
    rng = random.Random(seed)
    return [(pair["q1"], pair["q2"]) for pair in rng.sample(pairs, count)]


def varied_texts(count: int = 200, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    longs = [(_LONG_SEED * (2 + i % 4)) + f" Item {i}." for i in range(20)]  # 120-300 tokens
    texts = _SHORT + _NON_ENGLISH + _CODE + longs
    questions = qqp_questions(max(0, count - len(texts)))
    if len(questions) < count - len(texts):  # no data folder: make up the rest
        questions += [
            f"Question {i}: how does {rng.choice(_SHORT)} relate to item {i}?"
            for i in range(count - len(texts) - len(questions))
        ]
    return (texts + questions)[:count]
