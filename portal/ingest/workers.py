"""Ingest's worker processes: a fork server that has imported `prepare`, and pools forked from it.

Django-free, so that `manage.py ingest` can start the fork server before Django starts: its
imports (pydicom, numpy, Pillow: about half a second) then run on the other core while this
one sets Django up, and the first files go to workers that are ready.
"""

import atexit
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

WARM_UP_TIMEOUT_S = 30
ready = threading.Event()  # the fork server of this process has imported `prepare`
_warm_up: threading.Thread | None = None
_warm_up_lock = threading.Lock()


def new_pool(workers: int) -> ProcessPoolExecutor:
    """Not fork: children must not inherit the parent's database connections or threads. A
    fork server is a clean process that imports `prepare` once; every worker (of this upload,
    of a pool rebuilt after a crash, of the next upload) is forked from it ready to run,
    instead of importing pydicom and numpy again as a spawned one would."""
    context = get_context("forkserver")
    context.set_forkserver_preload(["portal.ingest.prepare"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def start(*, wait: bool = True) -> None:
    """Start the fork server, in a thread of this process, once per process. The first
    parallel upload starts it without waiting (`wait=False`) and prepares files itself
    meanwhile, on its own core; long-lived processes (the web server, the DICOM listener,
    `manage.py ingest` from its first line) start it at once, so no upload waits for it."""
    global _warm_up
    with _warm_up_lock:
        if _warm_up is None:
            _warm_up = threading.Thread(target=_start_fork_server, name="ingest-fork-server")
            _warm_up.daemon = True
            _warm_up.start()
            # A process that ends first (a usage error, `--help`) lets the warm-up finish:
            # a pool torn down while it forks its worker prints the worker's traceback.
            atexit.register(_warm_up.join, WARM_UP_TIMEOUT_S)
    if wait:
        _warm_up.join()


def _start_fork_server() -> None:
    try:
        with new_pool(1) as pool:
            pool.submit(os.getpid).result()
    finally:
        # Also when it failed: the upload's own pool then meets the error and says so.
        ready.set()


_kept: dict[int, ProcessPoolExecutor] = {}
_kept_lock = threading.Lock()


def kept_pool(count: int) -> ProcessPoolExecutor:
    """A pool of `count` workers that outlives its upload, shared by the uploads of this
    process (submitting to a pool is thread-safe): the web server and the DICOM listener
    take many small uploads (a STOW-RS request, an association), and forking workers and
    stopping them again costs each one 15 to 35 ms, most of a batch of 50 small films'."""
    with _kept_lock:
        pool = _kept.get(count)
        if pool is None:
            pool = _kept[count] = new_pool(count)
        return pool


def discard(pool: ProcessPoolExecutor) -> None:
    """A kept pool that broke (a worker died) goes: the next upload gets a new one."""
    with _kept_lock:
        for count, kept in list(_kept.items()):
            if kept is pool:
                del _kept[count]
