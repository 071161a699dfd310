"""`bench/dicom_push.py` in a small mode: it runs end to end against Orthanc and prints the two
ratios the issue sets goals for (C-STORE and STOW-RS). The goals are the benchmark's
(bench/RESULTS.md), not asserted here: a shared test machine's load moves them."""

import re
import shutil

import pytest

from tests.benches import bench_environment, run_bench
from tests.peers import orthanc_binary

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    orthanc_binary() is None or shutil.which("storescu") is None,
    reason="Orthanc and dcmtk (Debian packages) are needed to compare",
)
def test_bench_prints_the_cstore_and_stow_ratios(tmp_path):
    out = run_bench(
        "dicom_push.py",
        *("--films", "12", "--batch", "5", "--rounds", "1"),
        env=bench_environment(tmp_path),
    )
    assert re.search(r"C-STORE portal/orthanc = \d+\.\d\d \(goal >= 1\)", out), out
    stow = re.search(r"STOW-RS portal/orthanc (= \d+\.\d\d|: skipped: .+)", out)
    assert stow, out
    for label in ("portal C-STORE", "Orthanc C-STORE", "portal STOW-RS"):
        assert re.search(rf"  {label}: \d+\n", out), out
