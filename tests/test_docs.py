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


def test_the_readme_library_example_runs_as_written(tmp_path: Path) -> None:
    """A newcomer's first lines: the README's example, copied as it stands into an empty
    folder, runs with the shipped models and an embedded Redis, and its paraphrase HITs."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## In your own process", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    ran = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True,
        timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.split()[:2] == ["Miss", "Hit"], ran.stdout
    assert "An answer to: How do I reset my password?" in ran.stdout
