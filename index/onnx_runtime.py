"""ONNX Runtime as every model here is served: a CPU session whose threads spin only while a
run is under way, and the model's own tokenizer, truncating and padding to the longest text
of a batch. A model is an ``.onnx`` file or a packed folder (``index/packed_model.py``)."""

from pathlib import Path

import onnxruntime as ort
from tokenizers import Tokenizer

from index.packed_model import GRAPH_NAME, WEIGHTS_NAME, is_packed, unpacked_weights


def cpu_session(model: Path, threads: int | None = None) -> ort.InferenceSession:
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
    if not (model.is_dir() and is_packed(model)):
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    weights = unpacked_weights(model / WEIGHTS_NAME)
    values = [ort.OrtValue.ortvalue_from_numpy(array) for array in weights.values()]
    options.add_external_initializers(list(weights), values)
    session = ort.InferenceSession(
        (model / GRAPH_NAME).read_bytes(), options, providers=["CPUExecutionProvider"]
    )
    session.packed_weights = values  # ONNX Runtime reads them in place: keep them alive
    return session


def batch_tokenizer(tokenizer_file: Path, max_tokens: int) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer
