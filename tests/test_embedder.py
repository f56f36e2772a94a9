import numpy as np

from index.embedding.embedder import load_embedder
from index.embedding.protocol import EMBEDDING_DIM


def test_torch_embedder_gives_unit_384_vectors_and_loads_once() -> None:
    embedder = load_embedder("torch", None)
    assert load_embedder("torch", None) is embedder
    vectors = embedder.encode(
        [
            "What is the capital of France?",
            "Tell me the capital of France",
            "How do I bake sourdough bread?",
        ]
    )
    assert vectors.shape == (3, EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    paraphrase = float(((vectors[0] - vectors[1]) ** 2).sum())
    unrelated = float(((vectors[0] - vectors[2]) ** 2).sum())
    assert paraphrase < 0.35 < unrelated
