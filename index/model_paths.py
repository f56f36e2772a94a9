"""Where the models the project ships are found: the repository's ``models/`` in a checkout,
and the same folder packaged as ``index/shipped/`` in the wheel and the image (``setup.py``
maps it there). One resolution for the service, the CLI and the library: a relative model
path such as ``models/pair`` is read from the working directory when it is there (a clone, a
user's own build), else from the shipped models."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
MODELS_PREFIX = Path("models")


def shipped_models() -> Path:
    installed = _PACKAGE / "shipped"
    return installed if installed.is_dir() else _PACKAGE.parent / MODELS_PREFIX


def resolved(path: Path) -> Path:
    """``path`` as given when it is absolute or exists; a relative ``models/...`` path found
    nowhere else, among the shipped models."""
    if path.is_absolute() or path.exists() or path.parts[:1] != MODELS_PREFIX.parts:
        return path
    return shipped_models().joinpath(*path.parts[1:])
