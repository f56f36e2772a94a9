"""The documentation site builds strict (a broken link or anchor fails it), and the README
stays a front door."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_site_builds_strict(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    home = (tmp_path / "index.html").read_text()
    assert "Two commands" in home and "library/" in home  # the README, its links rewritten
    assert (tmp_path / "results" / "quality.png").exists()  # the benchmarks' plots


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "](../" not in readme  # no link outside the repository
    for linked in ("docs/library.md", "docs/benchmarks.md", "LICENSE", "CHANGELOG.md"):
        assert linked in readme and (ROOT / linked).exists(), linked
