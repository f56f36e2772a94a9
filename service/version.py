"""The one source of the version: the package metadata (pyproject.toml reads it from
here), the app's OpenAPI document, ``dyna-cache --version`` and the image label."""

__version__ = "0.2.0"
