"""Ingest's worker processes: a file that kills the process reading it costs only itself."""

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from portal.ingest import workers
from portal.ingest.archive import Item
from portal.ingest.dicom import Limits, may_need_native_decoder
from portal.ingest.prepare import Prepared, Refused
from portal.ingest.services.processing import CRASH_REASON, _Preparer, ingest_workers_start
from tests.dicom_files import make_dicom
from tests.portal.ingest.crashing import prepare_or_crash, worker_pid


def _preparer(files: int, out: Path, *, fn=prepare_or_crash, keep_pool: bool = False):
    return _Preparer(
        files, site_key=b"k" * 32, limits=Limits(), tmp_dir=out, fn=fn, keep_pool=keep_pool
    )


@pytest.fixture
def parallel(settings) -> None:
    settings.INGEST = {**settings.INGEST, "WORKERS": 2, "PARALLEL_MIN_FILES": 1}
    # Until the fork server is up, a parallel upload prepares uncompressed files itself; these
    # tests are about the worker processes, so every file goes to one.
    ingest_workers_start()


@pytest.mark.parametrize("keep_pool", [False, True], ids=["own pool", "kept pool"])
def test_a_file_that_kills_its_worker_is_rejected_and_the_others_are_prepared(
    parallel, tmp_path, keep_pool
):
    names = [f"{i:02d}.dcm" for i in range(10)]
    names[3] = "crash-03.dcm"
    names[8] = "crash-08.dcm"
    paths = [make_dicom(tmp_path / "in" / name) for name in names]
    out = tmp_path / "out"
    out.mkdir()

    with _preparer(len(paths), out, keep_pool=keep_pool) as runner:
        assert runner.parallel
        futures = [(Item(name=p.name, path=p), runner.submit(str(p))) for p in paths]
        outcomes = {item.name: runner.outcome(item, future) for item, future in futures}
        # The pool was rebuilt: later files still run in worker processes.
        after = make_dicom(tmp_path / "in" / "after.dcm")
        late = runner.outcome(Item(name="after.dcm", path=after), runner.submit(str(after)))
        prepared = [o for o in [*outcomes.values(), late] if isinstance(o, Prepared)]
        assert all(Path(o.tmp_path).is_file() for o in prepared)

    assert {n for n, o in outcomes.items() if isinstance(o, Refused)} == {
        "crash-03.dcm",
        "crash-08.dcm",
    }
    assert outcomes["crash-03.dcm"].reason == CRASH_REASON
    assert all(isinstance(o, Prepared) for n, o in outcomes.items() if not n.startswith("crash"))
    assert isinstance(late, Prepared)
    # Outputs never recorded go with the preparer, also those of files run again after a
    # crash whose first answer was lost.
    assert list(out.iterdir()) == []


def test_a_kept_pool_serves_upload_after_upload_with_the_same_workers(parallel, tmp_path):
    """A receiver (the web server, the DICOM listener) keeps its worker processes between
    uploads instead of forking and stopping two per STOW-RS request or association."""
    paths = [make_dicom(tmp_path / "in" / f"{i:02d}.dcm") for i in range(8)]

    def pids() -> set[str]:
        with _preparer(len(paths), tmp_path, fn=worker_pid, keep_pool=True) as runner:
            tickets = [(Item(name=p.name, path=p), runner.submit(str(p))) for p in paths]
            return {runner.outcome(item, ticket).reason for item, ticket in tickets}

    first = pids()
    assert str(os.getpid()) not in first
    assert all(psutil.pid_exists(int(pid)) for pid in first)  # still there, between uploads
    second = pids()
    # A pool forks its workers as files arrive: the first upload may have kept one busy
    # enough for all 8, the second then forks the other. What must hold is that both ran in
    # the one kept pool of two, whose first workers were never replaced.
    kept = {str(pid) for pid in workers.kept_pool(2)._processes}
    assert first | second <= kept
    assert len(kept) <= 2


def test_an_upload_whose_kept_pool_another_upload_broke_still_prepares_its_files(
    parallel, tmp_path
):
    """Two uploads of one receiver share the kept pool; a file that kills a worker in one
    breaks the pool under the other, whose next files must still be prepared."""
    paths = [make_dicom(tmp_path / "in" / f"{i:02d}.dcm") for i in range(12)]
    crash = make_dicom(tmp_path / "in" / "crash.dcm")
    out = tmp_path / "out"
    out.mkdir()

    with (
        _preparer(len(paths), out, keep_pool=True) as other,
        _preparer(len(paths), out, keep_pool=True) as breaker,
    ):
        early = [(Item(name=p.name, path=p), other.submit(str(p))) for p in paths[:4]]
        assert all(isinstance(other.outcome(i, t), Prepared) for i, t in early)  # pool is up
        crashed = breaker.outcome(Item(name="crash.dcm", path=crash), breaker.submit(str(crash)))
        assert crashed == Refused(CRASH_REASON)
        late = [(Item(name=p.name, path=p), other.submit(str(p))) for p in paths[4:]]
        outcomes = [other.outcome(item, ticket) for item, ticket in late]
    assert all(isinstance(o, Prepared) for o in outcomes), outcomes


def test_a_small_upload_reads_compressed_files_in_a_worker_process(tmp_path):
    """Under PARALLEL_MIN_FILES files are read in this process, except those that may reach a
    native codec: a compressed file that crashes its decoder costs only itself, and this
    process (in production, the Celery worker) lives on."""
    paths = [
        make_dicom(tmp_path / "in" / "a.dcm"),
        make_dicom(tmp_path / "in" / "crash-j2k.dcm", transfer_syntax=JPEG2000Lossless),
        make_dicom(tmp_path / "in" / "j2k.dcm", transfer_syntax=JPEG2000Lossless),
        make_dicom(tmp_path / "in" / "b.dcm"),
    ]
    with _preparer(len(paths), tmp_path) as runner:
        assert not runner.parallel
        tickets = [(Item(name=p.name, path=p), runner.submit(str(p))) for p in paths]
        # The uncompressed files ran at once, here; the compressed ones went to a worker.
        assert [t.result is not None for _, t in tickets] == [True, False, False, True]
        outcomes = {item.name: runner.outcome(item, ticket) for item, ticket in tickets}

    assert outcomes["crash-j2k.dcm"] == Refused(CRASH_REASON)
    assert all(isinstance(outcomes[n], Prepared) for n in ("a.dcm", "j2k.dcm", "b.dcm"))
    assert outcomes["j2k.dcm"].acquisition["transfer_syntax_uid"] == JPEG2000Lossless


@pytest.mark.parametrize(
    ("transfer_syntax", "isolated"),
    [
        (ExplicitVRLittleEndian, False),
        (ImplicitVRLittleEndian, False),
        (DeflatedExplicitVRLittleEndian, False),
        (JPEG2000Lossless, True),
        (JPEGBaseline8Bit, True),
        (JPEGLSLossless, True),
        (RLELossless, True),
    ],
)
def test_only_compressed_transfer_syntaxes_may_need_a_native_decoder(
    transfer_syntax, isolated, tmp_path
):
    path = make_dicom(tmp_path / "a.dcm", with_pixels=False)  # the header is what counts
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.save_as(path, enforce_file_format=True)
    assert may_need_native_decoder(path) is isolated


def test_a_bare_data_set_or_garbage_needs_no_native_decoder(tmp_path):
    bare = make_dicom(tmp_path / "bare.dcm", preamble=False)
    garbage = tmp_path / "z.dcm"
    garbage.write_bytes(b"\0" * 1000)
    assert not may_need_native_decoder(bare)
    assert not may_need_native_decoder(garbage)


def test_a_part10_header_that_cannot_be_read_is_isolated(tmp_path):
    damaged = tmp_path / "d.dcm"
    damaged.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x00" + b"1.2")
    assert may_need_native_decoder(damaged)


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running `code`."""
    probe = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"},
    )
    return set(out.stdout.split())


def test_the_fork_server_imports_neither_celery_nor_pydicom_download_helpers():
    """The first files of `manage.py ingest` wait for the fork server's imports: it imports
    what `prepare` needs, not Celery, nor the `requests` that pydicom would import for
    downloading its test files (which stays importable afterwards, for whoever needs it)."""
    modules = _modules_after("import portal.ingest.prepare\nimport requests")
    assert {"pydicom", "numpy", "requests"} <= modules
    assert "celery" not in _modules_after("import portal.ingest.prepare")
    assert "requests" not in _modules_after("import portal.ingest.prepare")


def test_django_starts_without_celery_which_the_first_message_imports():
    """`manage.py ingest` sends one message, at its end: Celery is imported then (in the
    broker's warm-up thread), not before the first file."""
    started = "import django\ndjango.setup()\nimport portal.ingest.services"
    assert "celery" not in _modules_after(started)
    assert "celery" in _modules_after(f"{started}\nfrom portal.core import outbox\noutbox._app()")
