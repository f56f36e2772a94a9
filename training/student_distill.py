"""A smaller embedder distilled from the packaged all-MiniLM-L6-v2 (issue 17: "a smaller
distilled student trained from the packaged model; measure its decisions against the
teacher on the dev split before even considering it").

The student is the teacher with half its transformer layers (layers 1, 3 and 5 of 6 kept,
their weights as the starting point, as DistilBERT was made), trained to reproduce the
teacher's mean-pooled, normalised embedding (mean squared error) of the questions of the
QQP *train* split (the dev split's questions are never seen). The teacher's targets come
from the served fp32 ONNX model. Exported to ONNX in the layout the ``onnx`` backend reads
(``model.onnx`` + ``tokenizer.json``), so a replica serves it with
``DYNACACHE_ONNX_DIR=models/student``. Not the default: ``bench/embedder_decisions.py``
measures its served decisions against the teacher's.

    python -m training.student_distill [--out models/student] [--epochs 2]

Needs torch (training only).
"""

import argparse
import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from index.embedding.embedder import packaged_model_path
from index.embedding.onnx_embedder import FP32_NAME, TOKENIZER_NAME, OnnxEmbedder
from training.onnx_export import export_transformer
from training.pair_data import pairs_in, read_pairs

log = logging.getLogger(__name__)

KEPT_LAYERS = (1, 3, 5)
MAX_TOKENS = 64  # QQP questions: 99 % fit


def train_questions(data: Path, limit: int, seed: int) -> list[str]:
    pairs = pairs_in(read_pairs(data / "qqp_open.jsonl"), "train")
    questions = list(dict.fromkeys(q for p in pairs for q in (p.q1, p.q2)))
    random.Random(seed).shuffle(questions)
    return questions[:limit]


def distil(
    data: Path, out: Path, teacher_onnx: Path, epochs: int, limit: int, seed: int
) -> dict[str, Any]:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    questions = train_questions(data, limit, seed)
    started = time.perf_counter()
    teacher = OnnxEmbedder(teacher_onnx / FP32_NAME, teacher_onnx / TOKENIZER_NAME)
    targets = teacher.encode(questions)
    log.info("teacher embedded %d questions in %.0f s", len(questions),
             time.perf_counter() - started)  # fmt: skip

    model_path = packaged_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    student = AutoModel.from_pretrained(str(model_path), attn_implementation="eager")
    student.encoder.layer = torch.nn.ModuleList(student.encoder.layer[i] for i in KEPT_LAYERS)
    student.config.num_hidden_layers = len(KEPT_LAYERS)

    def embed(texts: list[str]) -> Any:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS,
                          return_tensors="pt")  # fmt: skip
        hidden = student(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1)

    optimiser = torch.optim.AdamW(student.parameters(), lr=1e-4)
    batch_size, steps = 64, 0
    total = epochs * (len(questions) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / 100) * max(0.0, 1 - step / total)
    )
    target_tensor = torch.from_numpy(targets)
    student.train()
    for epoch in range(epochs):
        order = np.random.default_rng(seed + epoch).permutation(len(questions))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            rows = order[start : start + batch_size]
            predicted = embed([questions[i] for i in rows])
            loss = torch.nn.functional.mse_loss(predicted, target_tensor[rows]) * 384
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            steps += 1
            if steps % 100 == 0:
                log.info("student: epoch %d step %d/%d, loss %.4f, %.0f s", epoch, steps, total,
                         loss.item(), time.perf_counter() - started)  # fmt: skip
    student.eval()
    out.mkdir(parents=True, exist_ok=True)

    sample = tokenizer(["an example sentence to trace", "short"], padding=True, return_tensors="pt")
    staging = out / f".{FP32_NAME}.tmp"
    export_transformer(student, sample, staging)
    staging.replace(out / FP32_NAME)
    shutil.copyfile(teacher_onnx / TOKENIZER_NAME, out / TOKENIZER_NAME)
    # how close the served student comes to the teacher on dev questions (never trained on)
    dev = pairs_in(read_pairs(data / "qqp_open.jsonl"), "dev")
    dev_questions = list(dict.fromkeys(q for p in dev[:2000] for q in (p.q1, p.q2)))
    served = OnnxEmbedder(out / FP32_NAME, out / TOKENIZER_NAME)
    cosine = np.sum(served.encode(dev_questions) * teacher.encode(dev_questions), axis=1)
    figures = {
        "kept_layers": list(KEPT_LAYERS),
        "train_questions": len(questions),
        "epochs": epochs,
        "seconds": round(time.perf_counter() - started, 1),
        "dev_cosine_to_teacher_mean": round(float(cosine.mean()), 4),
        "dev_cosine_to_teacher_p1": round(float(np.percentile(cosine, 1)), 4),
    }
    log.info("student written to %s: %s", out, figures)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("models/student"))
    parser.add_argument("--teacher-onnx", type=Path, default=Path("models/onnx"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--questions", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    distil(args.data, args.out, args.teacher_onnx, args.epochs, args.questions, args.seed)


if __name__ == "__main__":
    main()
