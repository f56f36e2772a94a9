"""Real LLM prompts for ``bench/real_prompts.py``, read at run time from public repository
snapshots (never copied into this repository), plus code from this machine's Python stdlib.

Sources (each a git repository under ``--mirrors``, named ``<owner>+<name>/repo``; with the
workplace's search tool, ``fetch github:<owner>/<name>`` puts it there; a plain
``git clone https://github.com/<owner>/<name> <mirrors>/<owner>+<name>/repo`` does too):

- ``yizhongw/self-instruct`` (Apache-2.0): its 175 seed tasks and 252 user-oriented
  instructions with their inputs; and, from its T0 sample, CNN/DailyMail articles with a
  summarising instruction and adversarial-QA passages with a question (those data sets'
  own licences: Apache-2.0, CC BY-SA 4.0);
- ``openai/grade-school-math`` (MIT): GSM8K's test questions;
- ``openai/human-eval`` (MIT): HumanEval's function stubs, asked with a coding task.

Dolly-15k and Alpaca's data files are larger than a snapshot carries, so they are not used.
Prompts over 1,000 tokens are several articles under one instruction, or a long stretch of
a stdlib module under a coding task. Lengths are counted by the embedder's own tokenizer.
"""

import gzip
import json
import os
import random
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from index.embedding.onnx_embedder import SHIPPED, TOKENIZER_NAME
from index.model_paths import resolved

MIRRORS = Path(os.environ.get("DYNACACHE_MIRRORS", "/work/.mirror"))
SELF_INSTRUCT = "yizhongw+self-instruct"
GSM8K = "openai+grade-school-math"
HUMAN_EVAL = "openai+human-eval"
_T0 = "data/finetuning/t0_train_50k/data_per_template/"
CNN_TEMPLATES = ("tldr_summary", "news_summary", "sum_in_brief", "2_or_3_sentences",
                 "write_an_outline", "news_card_view")  # fmt: skip

BUCKETS = ("<64", "64-256", "256-1k", ">1k")

CODE_TASKS = (
    "Explain what this code does.", "Find the bug in this code and fix it.",
    "Add type hints and docstrings to this code.", "Write unit tests for this code.",
    "Refactor this code for readability.", "Review this code and suggest improvements.",
)  # fmt: skip
MULTI_ARTICLE_TASKS = (
    "Summarise what these news articles have in common.",
    "List every person named in these articles and say what each did.",
    "Write a headline for each of the following articles.",
    "Which of these articles is the most important? Explain why.",
)


@dataclass(frozen=True)
class Task:
    text: str
    source: str
    code: bool = False


class Lengths:
    """Token counts by the embedder's tokenizer, with no truncation."""

    def __init__(self) -> None:
        self._tokenizer = Tokenizer.from_file(str(resolved(SHIPPED) / TOKENIZER_NAME))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text).ids)

    def bucket(self, text: str) -> str:
        count = self.tokens(text)
        if count < 64:
            return BUCKETS[0]
        if count < 256:
            return BUCKETS[1]
        return BUCKETS[2] if count <= 1000 else BUCKETS[3]


def git_file(mirrors: Path, repo: str, path: str) -> bytes:
    folder = mirrors / repo / "repo"
    if not folder.exists():
        name = repo.replace("+", "/")
        raise FileNotFoundError(
            f"{folder} is missing: fetch github:{name} (bench/prompt_sources.py)"
        )
    return subprocess.run(
        ["git", "-C", str(folder), "show", f"HEAD:{path}"], capture_output=True, check=True
    ).stdout


def _jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _with_input(instruction: str, given: str) -> str:
    return f"{instruction.strip()}\n\n{given.strip()}" if given.strip() else instruction.strip()


def instruction_tasks(mirrors: Path) -> Iterator[Task]:
    for row in _jsonl(git_file(mirrors, SELF_INSTRUCT, "data/seed_tasks.jsonl")):
        yield Task(
            _with_input(row["instruction"], row["instances"][0]["input"]), "self-instruct-seed"
        )
    path = "human_eval/user_oriented_instructions.jsonl"
    for row in _jsonl(git_file(mirrors, SELF_INSTRUCT, path)):
        yield Task(
            _with_input(row["instruction"], row["instances"][0]["input"]), "self-instruct-user"
        )
    for row in _jsonl(git_file(mirrors, GSM8K, "grade_school_math/data/test.jsonl")):
        yield Task(row["question"].strip(), "gsm8k")


def passage_tasks(mirrors: Path) -> Iterator[Task]:
    for model in ("dbert", "dbidaf", "droberta"):
        path = f"{_T0}adversarial_qa_{model}_based_on.jsonl"
        for row in _jsonl(git_file(mirrors, SELF_INSTRUCT, path)):
            yield Task(row["prompt"].strip(), "adversarial-qa")


def articles(mirrors: Path) -> list[tuple[str, str]]:
    """Distinct (instruction, article) of the CNN/DailyMail templates."""
    seen: dict[str, str] = {}
    for template in CNN_TEMPLATES:
        path = f"{_T0}cnn_dailymail_3_0_0_{template}.jsonl"
        for row in _jsonl(git_file(mirrors, SELF_INSTRUCT, path)):
            head, _, article = row["prompt"].strip().partition("\n\n")
            if article and article not in seen:
                seen[article] = head
    return [(head, article) for article, head in seen.items()]


def human_eval_tasks(mirrors: Path, rng: random.Random) -> Iterator[Task]:
    data = gzip.decompress(git_file(mirrors, HUMAN_EVAL, "data/HumanEval.jsonl.gz"))
    for row in _jsonl(data):
        task = rng.choice(("Complete the following Python function.", *CODE_TASKS))
        yield Task(f"{task}\n\n{row['prompt'].rstrip()}\n", "human-eval", code=True)


def stdlib_snippets(rng: random.Random, lines: tuple[int, int], count: int) -> Iterator[Task]:
    """``count`` stretches of stdlib modules, each starting at a ``def``, of ``lines`` lines,
    fenced under a coding task."""
    folder = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in folder.glob("*.py") if p.stat().st_size > 4000)
    made = 0
    while made < count:
        source = rng.choice(files).read_text(errors="replace").splitlines()
        starts = [i for i, line in enumerate(source) if line.lstrip().startswith("def ")]
        if not starts:
            continue
        start = rng.choice(starts)
        stretch = source[start : start + rng.randint(*lines)]
        if len(stretch) < lines[0]:
            continue
        code = "\n".join(stretch).strip("\n")
        yield Task(f"{rng.choice(CODE_TASKS)}\n\n```python\n{code}\n```", "stdlib", code=True)
        made += 1


def tasks(mirrors: Path, seed: int) -> list[Task]:
    """Every candidate prompt, in a seeded order that mixes the sources."""
    rng = random.Random(seed)
    news = articles(mirrors)
    singles = [Task(f"{head}\n\n{body}", "cnn") for head, body in news]
    multis = []
    bodies = [body for _, body in news]
    rng.shuffle(bodies)
    for i in range(0, len(bodies) - 2, 3):
        joined = "\n\n".join(f"Article {n + 1}:\n{b}" for n, b in enumerate(bodies[i : i + 3]))
        multis.append(Task(f"{rng.choice(MULTI_ARTICLE_TASKS)}\n\n{joined}", "cnn-multi"))
    groups = [
        list(instruction_tasks(mirrors)),
        list(passage_tasks(mirrors)),
        singles,
        multis,
        list(human_eval_tasks(mirrors, rng)),
        list(stdlib_snippets(rng, (4, 9), 120)),
        list(stdlib_snippets(rng, (30, 70), 120)),
        list(stdlib_snippets(rng, (140, 260), 120)),
    ]
    for group in groups:
        rng.shuffle(group)
    mixed: list[Task] = []
    for position in range(max(len(g) for g in groups)):
        mixed.extend(g[position] for g in groups if position < len(g))
    return list({t.text: t for t in mixed}.values())
