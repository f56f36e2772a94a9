"""The release: the package builds as a wheel and an sdist, and the wheel installs in a
fresh virtual environment, where ``dyna-cache`` runs and the public API imports. The
environment takes its dependencies from the package index (a local mirror or cache makes
this quick; it is marked ``package`` and run by ``make package-test``, in CI)."""

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
