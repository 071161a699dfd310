"""Benchmarks run end to end under a test: each `bench/` script as a user runs it, in its own
process, from the checkout's root."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]


def bench_environment(tmp_path: Path) -> dict[str, str]:
    """The environment a benchmark runs in under a test: its stray files in `tmp_path`, and on
    PostgreSQL its throwaway databases (`<name>_bench`) named after this test process, so that
    two processes of `pytest -n 2` never drop each other's."""
    env = dict(os.environ, PORTAL_DATA_DIR=str(tmp_path / "var"))
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if env.get("DATABASE_URL") and worker:
        parts = urlsplit(env["DATABASE_URL"])
        name = parts.path.lstrip("/") or "postgres"
        env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}_{worker}"))
    return env


def run_bench(
    script: str, *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> str:
    """`bench/<script>` run to its end; its standard output. A failure shows the tail of what
    it printed."""
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


def load_bench(script: str) -> ModuleType:
    """`bench/<script>` imported as a module, for tests of its parts."""
    spec = importlib.util.spec_from_file_location(
        f"bench_{Path(script).stem}", ROOT / "bench" / script
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
