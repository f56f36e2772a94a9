"""ONNX Runtime as every model here is served: a CPU session whose threads spin only while a
run is under way, and the model's own tokenizer, truncating and padding to the longest text
of a batch."""

from pathlib import Path

import onnxruntime as ort
from tokenizers import Tokenizer


def cpu_session(model_file: Path, threads: int | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Intra-op threads spin between a run's operators (a thread put to sleep and woken
    # ~100 times per run made a lone text ~25 % slower on two threads here, no faster than on
    # one), and stop when the run ends: left to spin after it, they kept a core busy for
    # ~40 ms after every run, taking it from the event loop and Redis (it halved throughput).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])


def batch_tokenizer(tokenizer_file: Path, max_tokens: int) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer
