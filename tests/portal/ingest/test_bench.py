"""`bench/ingest.py` in a small mode: it runs end to end and prints the two ratios the issue
sets goals for, `manage.py ingest` against Orthanc and a JPEG 2000 chest film against its
uncompressed copy. Timing goals are the benchmark's (bench/RESULTS.md, "Ingest"), not
asserted here: a shared test machine's load moves them."""

import os
import re

import pytest

from tests.benches import bench_environment, run_bench
from tests.peers import orthanc_binary

NUMBER = r"\d+\.\d+"

pytestmark = pytest.mark.slow


def test_bench_prints_the_orthanc_and_jpeg2000_ratios(tmp_path):
    if not orthanc_binary():
        pytest.skip("Orthanc is not installed (Debian package `orthanc`): no ratio to print")
    # The bench gives each ingest its own data folder and, on PostgreSQL, a throwaway database
    # beside the configured one; PORTAL_DATA_DIR here only keeps stray files out of the checkout.
    out = run_bench(
        "ingest.py",
        *("--small", "60", "--films", "2", "--rounds", "2"),
        env=bench_environment(tmp_path),
    )
    assert "orthanc: skipped" not in out, out
    ratio = re.search(rf"ingest/orthanc = ({NUMBER})", out)
    assert ratio, out
    assert float(ratio.group(1)) > 0
    rounds = re.findall(
        rf"({NUMBER}) / ({NUMBER}) \(({NUMBER})\)", out.split("(ratio): ")[1].splitlines()[0]
    )
    assert len(rounds) == 2, out
    # The median of the rounds' own ratios (the mean of two), from their printed rates:
    # files/s of the command over files/s of Orthanc.
    median = re.search(rf"median of the rounds' ratios: ({NUMBER})", out)
    assert median, out
    expected = sum(float(ingest) / float(orthanc) for ingest, orthanc, _ in rounds) / 2
    assert float(median.group(1)) == pytest.approx(expected, abs=0.011), out
    j2k = re.search(rf"chest CR RG1_J2KR/uncompressed = ({NUMBER})", out)
    assert j2k, out
    assert float(j2k.group(1)) > 0
    database = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite"
    assert out.startswith(database), out
