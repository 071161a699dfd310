"""`bench/dicom_push.py` in a small mode: it runs end to end against Orthanc and prints the two
ratios the issue sets goals for (C-STORE and STOW-RS). The goals are the benchmark's
(bench/RESULTS.md), not asserted here: a shared test machine's load moves them."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers import bench_environment, orthanc_binary

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    orthanc_binary() is None or shutil.which("storescu") is None,
    reason="Orthanc and dcmtk (Debian packages) are needed to compare",
)
def test_bench_prints_the_cstore_and_stow_ratios(tmp_path):
    env = bench_environment(tmp_path)
    done = subprocess.run(
        [sys.executable, "bench/dicom_push.py", "--films", "12", "--batch", "5", "--rounds", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"C-STORE portal/orthanc = \d+\.\d\d \(goal >= 1\)", done.stdout), done.stdout
    stow = re.search(r"STOW-RS portal/orthanc (= \d+\.\d\d|: skipped: .+)", done.stdout)
    assert stow, done.stdout
    for label in ("portal C-STORE", "Orthanc C-STORE", "portal STOW-RS"):
        assert re.search(rf"  {label}: \d+\n", done.stdout), done.stdout
