"""The shipped models (``models/``) go into the wheel as ``index/shipped/`` (index/model_paths.py
finds them there); everything else is declared in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["service*", "index*", "dyna_cache*", "training*"]),
        "index.shipped",
    ],
    package_dir={"index.shipped": "models"},  # its files: pyproject.toml's package-data
)
