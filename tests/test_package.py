"""The release: the package builds as a wheel and an sdist, and the wheel installs in a
fresh virtual environment with no torch, where ``dyna-cache`` runs, the public API imports,
and a cache opened in an empty folder embeds and judges with the models the wheel ships.
The environment takes its dependencies from the package index (a local mirror or cache makes
this quick; it is marked ``package`` and run by ``make package-test``, in CI)."""

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from service.version import __version__

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.package
def test_the_wheel_installs_in_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(tmp_path / "dist"),
         str(ROOT)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob(f"dyna_cache-{__version__}-*.whl"))
    assert next((tmp_path / "dist").glob(f"dyna_cache-{__version__}.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "dyna_cache/__init__.py" in names and "index/store/lua/write_entry.lua" in names
    assert not any(name.startswith(("tests/", "bench/", "devtools/")) for name in names)
    assert any(name.endswith("licenses/LICENSE") for name in names)
    shipped = {
        "index/shipped/embedder/weights.npz",
        "index/shipped/pair/weights.npz",
        "index/shipped/pair/pair_model.json",
        "index/shipped/verifier/verifier.npz",
    }
    assert shipped <= set(names), shipped - set(names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{wheel}[langchain]"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    helped = subprocess.run([str(env_dir / "bin" / "dyna-cache"), "--help"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert helped.returncode == 0 and "warm" in helped.stdout, helped.stderr
    version = subprocess.run([str(env_dir / "bin" / "dyna-cache"), "--version"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert version.stdout.strip() == f"dyna-cache {__version__}"
    imported = subprocess.run(
        [str(python), "-c", "from dyna_cache import SemanticCache, SyncSemanticCache; "
         "from dyna_cache.langchain import DynaCacheLLMCache; import dyna_cache; "
         "print(dyna_cache.__version__)"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.strip() == __version__

    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    packages = {row["name"].lower() for row in json.loads(listed.stdout)}
    assert not packages & {"torch", "sentence-transformers", "transformers", "onnx"}, packages

    empty = tmp_path / "empty"
    empty.mkdir()
    judged = subprocess.run([str(python), "-c", JUDGED], capture_output=True, text=True,
                            timeout=600, cwd=empty)  # fmt: skip
    assert judged.returncode == 0, judged.stderr[-3000:]
    outcome = json.loads(judged.stdout.strip().splitlines()[-1])
    assert outcome["stage"] == "pair-model" and outcome["version"], outcome
    assert outcome["paraphrase"] == "HIT" and outcome["paraphrase_judged"], outcome
    assert outcome["swap"] == "MISS", outcome
    assert not (empty / "models").exists()


# run in the wheel's venv from an empty folder: the shipped embedder and pair model decide
JUDGED = """
import json
from dyna_cache import Hit, SyncSemanticCache
with SyncSemanticCache(pair_model="auto") as cache:
    cache.store("How do I reset my password?", "Use the reset link.")
    cache.store("Why did Germany invade Poland?", "Germany's reasons.")
    paraphrase = cache.check("How can I reset my password?")
    swap = cache.check("Why did Poland invade Germany?")
    decision = cache.stats()["decision"]
    print(json.dumps({
        "stage": decision["stage"], "version": decision.get("version"),
        "paraphrase": "HIT" if isinstance(paraphrase, Hit) else "MISS",
        "paraphrase_judged": paraphrase.distance > 0,
        "swap": "HIT" if isinstance(swap, Hit) else "MISS",
    }))
"""
