"""ONNX Runtime as every model here is served: a CPU session that does not spin, and the
model's own tokenizer, truncating and padding to the longest text of a batch."""

from pathlib import Path

import onnxruntime as ort
from tokenizers import Tokenizer


def cpu_session(model_file: Path, threads: int | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle intra-op threads must sleep, not spin: on a small machine spinning threads
    # take the cores the event loop and Redis need (it halved throughput here)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])


def batch_tokenizer(tokenizer_file: Path, max_tokens: int) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer
