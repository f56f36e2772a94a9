"""A model shipped as its graph and its weights apart: ``graph.onnx`` (the ONNX graph, every
initializer marked external) and ``weights.npz`` (each large weight as int8 with one scale per
output channel or table row; small ones as float32). Loading dequantises the weights and hands
them to ONNX Runtime as the graph's initializers, so the model computes in float32 with weights
rounded to int8: a quarter of the size on disk, batch-invariant results (unlike dynamic int8
quantisation of activations), and no torch or ``onnx`` package at run time.

``training/pack_model.py`` writes this form from an exported float32 model.
"""

import functools
from pathlib import Path

import numpy as np

GRAPH_NAME = "graph.onnx"
WEIGHTS_NAME = "weights.npz"
SCALE_SUFFIX = ".scale"  # beside an int8 array: its float32 scales, broadcast against it


def is_packed(folder: Path) -> bool:
    return (folder / GRAPH_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


@functools.cache
def unpacked_weights(weights_file: Path) -> dict[str, np.ndarray]:
    """Every initializer of a packed model, int8 ones dequantised to float32; once per
    process (sessions of one model, such as a replica's embedding lanes, share them)."""
    with np.load(weights_file) as stored:
        arrays = {name: stored[name] for name in stored.files}
    weights: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = arrays.get(name + SCALE_SUFFIX)
        if scale is not None:
            array = array.astype(np.float32) * scale
        weights[name] = np.ascontiguousarray(array)
        weights[name].flags.writeable = False
    return weights
