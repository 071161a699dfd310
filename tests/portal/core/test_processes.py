"""Stopping `make run`'s children with whatever they started (the demo trainer's phantom
generator once left its process pool running after Ctrl-C)."""

import subprocess
import sys

import psutil

from portal.core.processes import stop_process_groups
from tests.conftest import wait_for

# A child that starts a grandchild which ignores SIGTERM, as a hung pool worker does, and then
# waits; SIGTERM ends the child alone and orphans the grandchild.
GRANDCHILD = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(600)
"""
PARENT = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {GRANDCHILD!r}])
time.sleep(600)
"""


def test_stop_process_groups_stops_the_child_and_what_it_left_behind():
    child = subprocess.Popen(
        [sys.executable, "-c", PARENT], process_group=0, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline() == "ready\n"
    wait_for(lambda: psutil.Process(child.pid).children(), timeout_s=10, what="the grandchild")
    grandchild = psutil.Process(child.pid).children()[0]

    stop_process_groups([child], timeout_s=1)

    assert child.returncode is not None
    gone, alive = psutil.wait_procs([grandchild], timeout=10)
    assert alive == []
