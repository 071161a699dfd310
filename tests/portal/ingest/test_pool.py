"""Ingest's worker processes: a file that kills the process reading it costs only itself."""

from pathlib import Path

import pytest

from portal.ingest.archive import Item
from portal.ingest.dicom import Limits
from portal.ingest.prepare import Prepared, Refused
from portal.ingest.services import CRASH_REASON, _Preparer
from tests.dicom_files import make_dicom
from tests.portal.ingest.crashing import prepare_or_crash


@pytest.fixture
def parallel(settings) -> None:
    settings.INGEST = {**settings.INGEST, "WORKERS": 2, "PARALLEL_MIN_FILES": 1}


def test_a_file_that_kills_its_worker_is_rejected_and_the_others_are_prepared(parallel, tmp_path):
    names = [f"{i:02d}.dcm" for i in range(10)]
    names[3] = "crash-03.dcm"
    names[8] = "crash-08.dcm"
    paths = [make_dicom(tmp_path / "in" / name) for name in names]
    out = tmp_path / "out"
    out.mkdir()

    with _Preparer(len(paths), (b"k" * 32, Limits(), str(out)), fn=prepare_or_crash) as runner:
        assert runner.parallel
        futures = [(Item(name=p.name, path=p), runner.submit(str(p))) for p in paths]
        outcomes = {item.name: runner.outcome(item, future) for item, future in futures}
        # The pool was rebuilt: later files still run in worker processes.
        after = make_dicom(tmp_path / "in" / "after.dcm")
        late = runner.outcome(Item(name="after.dcm", path=after), runner.submit(str(after)))

    assert {n for n, o in outcomes.items() if isinstance(o, Refused)} == {
        "crash-03.dcm",
        "crash-08.dcm",
    }
    assert outcomes["crash-03.dcm"].reason == CRASH_REASON
    assert all(isinstance(o, Prepared) for n, o in outcomes.items() if not n.startswith("crash"))
    assert isinstance(late, Prepared)
    prepared = [Path(o.tmp_path) for o in [*outcomes.values(), late] if isinstance(o, Prepared)]
    assert sorted(out.iterdir()) == sorted(prepared)
