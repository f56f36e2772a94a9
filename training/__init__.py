"""Everything offline that builds models: data splits and the corpus, the pair model, the
verifier, the student, the ONNX export, and calibration. The runtime (``service``,
``index``, ``dyna_cache``) never imports it (the CLI's ``calibrate`` and ``fine-tune`` do,
lazily, when run), and the runtime image does not hold it."""
