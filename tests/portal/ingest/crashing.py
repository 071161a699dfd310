"""A stand-in for a native codec that crashes on one file, run in ingest's worker processes
(a module of its own: spawned workers import it, without Django)."""

import os
import signal
from pathlib import Path

from portal.ingest.prepare import prepare


def prepare_or_crash(path: str, *args):
    """`prepare`, except that a file named `crash*` kills the process as a segfault would."""
    if Path(path).name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return prepare(path, *args)


def worker_pid(path: str, *args):
    """No file is prepared: the refusal names the worker process that took it."""
    from portal.ingest.prepare import Refused

    return Refused(str(os.getpid()))
