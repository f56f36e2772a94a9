"""Vector side of Dyna-Cache: embedding, the in-process FAISS index, the Redis store and sync."""
