"""HTTP side of Dyna-Cache: API, settings, the query path, LLM clients, telemetry."""
