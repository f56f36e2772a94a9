"""Export all-MiniLM-L6-v2 to ONNX (fp32) and quantise it (int8), for the onnx backends.

    python -m training.onnx_export [--model PATH] [--out DIR]

The graph is the transformer only (``input_ids``, ``attention_mask``, ``token_type_ids`` →
``last_hidden_state``); mean pooling and L2 normalisation happen in numpy, as
sentence-transformers does them. The int8 model is dynamic quantisation of the MatMul
weights, per channel, unsigned: plain per-tensor int8 loses too much (cosine to torch as low
as 0.84 on some texts). The tokenizer file is copied beside the models. Needs torch (only
here: serving with the onnx backends does not import it).
"""

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from index.embedding.embedder import packaged_model_path
from index.embedding.onnx_embedder import FP32_NAME, INT8_NAME, TOKENIZER_NAME, model_files

log = logging.getLogger(__name__)


def export_bert_inputs(
    module: Any, sample: Any, path: Path, output: str, output_axes: dict[int, str]
) -> None:
    """``torch.onnx.export`` of a module over BERT's three inputs (``input_ids``,
    ``attention_mask``, ``token_type_ids``; batch and tokens dynamic) to one named output."""
    import torch

    dynamic = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        torch.onnx.export(
            module,
            (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
            str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=[output],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic,
                          "token_type_ids": dynamic, output: output_axes},
            opset_version=17,
            dynamo=False,
        )  # fmt: skip


def export_transformer(model: Any, sample: Any, path: Path) -> None:
    """Export a BERT-like transformer's ``last_hidden_state`` (pooling is done in numpy)."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            output = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            hidden: torch.Tensor = output.last_hidden_state
            return hidden

    export_bert_inputs(
        LastHiddenState(), sample, path, "last_hidden_state", {0: "batch", 1: "tokens"}
    )


def export(model_path: Path, out_dir: Path) -> None:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    # eager attention: the SDPA path exports to a graph whose cost grows badly with batch
    model = AutoModel.from_pretrained(str(model_path), attn_implementation="eager").eval()
    sample = tokenizer(["an example sentence to trace", "short"], padding=True, return_tensors="pt")

    fp32_path = out_dir / FP32_NAME
    staging = out_dir / f".{FP32_NAME}.tmp"
    export_transformer(model, sample, staging)
    staging.replace(fp32_path)
    int8_staging = out_dir / f".{INT8_NAME}.tmp"
    quantize_dynamic(
        str(fp32_path),
        str(int8_staging),
        per_channel=True,
        weight_type=QuantType.QUInt8,
        op_types_to_quantize=["MatMul"],
    )
    int8_staging.replace(out_dir / INT8_NAME)
    shutil.copyfile(model_path / TOKENIZER_NAME, out_dir / TOKENIZER_NAME)
    log.info("exported ONNX models to %s in %.1f s", out_dir, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="sentence-transformers folder")
    parser.add_argument("--out", type=Path, default=Path("models/onnx"))
    parser.add_argument("--if-missing", action="store_true", help="do nothing when present")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.if_missing and all(
        path.exists() for path in (*model_files(args.out, "onnx"), args.out / INT8_NAME)
    ):
        return
    export(args.model or packaged_model_path(), args.out)
    for path in sorted(args.out.iterdir()):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
