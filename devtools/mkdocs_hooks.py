"""MkDocs hooks for ``make docs``: the site's home page is the README (one front door, not
two copies), its links into ``docs/`` rewritten for the site; the plots the benchmarks
write into ``bench/results/`` are served as ``results/<name>.png``."""

import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    for plot in sorted((ROOT / "bench" / "results").glob("*.png")):
        files.append(
            File(f"results/{plot.name}", str(ROOT / "bench"), config.site_dir,
                 config.use_directory_urls)
        )  # fmt: skip
    files.append(
        File.generated(config, "index.md", content=home_page((ROOT / "README.md").read_text()))
    )
    return files


def home_page(readme: str) -> str:
    """The README as the site's home: ``docs/x.md`` → ``x.md``; links to files outside
    ``docs/`` (LICENSE, CHANGELOG) become plain text naming the file."""
    text = readme.replace("](docs/", "](")
    return re.sub(r"\[([^\]]+)\]\((?!https?://)([^)]+?\.(?:md|txt)|LICENSE)\)",
                  lambda m: m.group(0) if "/" not in m.group(2) and m.group(2).endswith(".md")
                  and (ROOT / "docs" / m.group(2)).exists() else f"{m.group(1)} (`{m.group(2)}`)",
                  text)  # fmt: skip
