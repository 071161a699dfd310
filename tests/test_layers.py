"""The apps import only downwards: the `layers` contract of pyproject.toml, checked by
import-linter (which reads every import, those inside functions included), names every app of
portal/ in its place, so that a new app cannot sit outside it unchecked."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c.get("id") == "layers"]
    assert contract["type"] == "layers"
    # A layer may hold independent siblings: "portal.a | portal.b".
    return [name.strip() for layer in contract["layers"] for name in layer.split("|")]


def test_the_layers_contract_names_every_app_and_the_worker_at_the_bottom():
    apps = {f"portal.{path.parent.name}" for path in (ROOT / "portal").glob("*/apps.py")}
    layers = _layers()
    assert len(apps) >= 8
    assert sorted(set(layers) - {"inference_worker"}) == sorted(apps)
    assert len(layers) == len(set(layers))
    # The worker imports no app: it is the ground every app may stand on.
    assert layers[-1] == "inference_worker"
    # The apps that the others build on, and the one that orchestrates them all.
    assert layers.index("portal.core") == len(layers) - 2
    assert layers[0] == "portal.operations"


def test_no_app_imports_one_above_it():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--contract", "layers", "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "The apps import only downwards KEPT" in result.stdout
