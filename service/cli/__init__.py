"""``dyna-cache``: the operator's command line (``service/cli/main.py``)."""
