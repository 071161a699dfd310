"""Processing an upload: each file prepared (in worker processes when it pays), stored in order."""

import logging
import os
import shutil
import sys
import tempfile
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.core import outbox
from portal.core.files import data_folder
from portal.ingest import staging, workers
from portal.ingest.archive import Item, Source, ZipLimits, count_items, iter_items
from portal.ingest.models import Upload, UploadFile
from portal.ingest.outcomes import Limits, Prepared, Refused, prepare_file, prepare_many
from portal.ingest.services.store import FileRef, _counters_refresh, _store, _store_many
from portal.ingest.services.uploads import (
    _OPEN,
    UPLOAD_DONE_TASK,
    IngestError,
    _fail,
    _lock,
    upload_claim,
)

# One logger for the package, whichever of its modules logs.
log = logging.getLogger(__package__)


def upload_process_staged(*, upload_id: int, redelivered: bool = False) -> Upload:
    """What the Celery task runs: ingest the staged files; the staging folder goes with the
    end of processing. A message the broker hands back after its worker died (`redelivered`)
    resumes a processing upload; any other message for an upload that is not `submitted`
    does nothing (see `upload_claim`)."""
    upload = upload_claim(upload_id=upload_id, redelivered=redelivered)
    if upload is None:
        return Upload.objects.get(pk=upload_id)
    try:
        files = staging.staged_files(upload.uuid.hex, upload.received_files)
    except (staging.StagingError, OSError, ValueError, KeyError) as exc:
        reason = str(exc) if isinstance(exc, staging.StagingError) else type(exc).__name__
        return _fail(upload, f"the staged files cannot be read: {reason}")
    sources = [Source(path=f.path, name=f.name, reason=f.reason) for f in files]
    return upload_process(upload=upload, sources=sources)


def _zip_limits() -> ZipLimits:
    cfg = settings.INGEST
    return ZipLimits(
        max_uncompressed_bytes=cfg["ZIP_MAX_UNCOMPRESSED_BYTES"],
        max_ratio=cfg["ZIP_MAX_RATIO"],
        max_entries=cfg["ZIP_MAX_ENTRIES"],
        max_file_bytes=settings.PORTAL_MAX_FILE_BYTES,
    )


def _image_limits() -> Limits:
    cfg = settings.INGEST
    return Limits(
        min_dimension=cfg["MIN_DIMENSION"],
        max_dimension=cfg["MAX_DIMENSION"],
        max_aspect_ratio=cfg["MAX_ASPECT_RATIO"],
    )


COUNTER_BATCH = 200  # report lines between two updates of the upload's counters
# Report lines recorded in one transaction, at most and at least (the upload's last files
# aside), in an upload read by worker processes. Waiting for RECORD_LEAST outcomes before
# recording pays each transaction's round trips (begin, the site's lock, two inserts, commit)
# once per 32 files rather than once per chunk: on two cores that the workers keep busy,
# each round trip waits for the database server to be scheduled (`manage.py ingest` 6%
# faster on PostgreSQL, 3% on SQLite; bench/RESULTS.md, Ingest). As many more files are read
# ahead, so that the workers are not left idle meanwhile.
RECORD_RUN = 64
RECORD_LEAST = 32


def upload_process(
    *,
    upload: Upload,
    sources: list[Source],
    on_total: Callable[[int], None] | None = None,
    on_file: Callable[[UploadFile, FileRef], None] | None = None,
) -> Upload:
    """Ingest every file of `sources` into `upload`, one transaction per file (per run of
    files whose outcomes are in, in a parallel upload: `_store_many`).

    Reading and de-identifying run in worker processes when the upload is large enough;
    recording stays here, in upload order. `on_file` gets each report line with the
    uploader's name for it (in memory only). Safe to run again after a crash: files already
    in the report are skipped. However it ends, the upload's staging folder goes with it.
    """
    zip_limits, limits = _zip_limits(), _image_limits()
    total = count_items(sources, zip_limits)
    upload = _begin(upload, total)
    already = set(upload.files.values_list("index", "entry")) if upload.processed_files else set()
    if on_total:
        on_total(total)
    key = upload.site.pseudonym_key.encode()
    tmp_dir = data_folder("tmp")  # de-identified output, on the storage's file system
    work_dir = staging.folder(upload.uuid.hex) / "work"  # identified archive entries
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pending: deque[tuple[Item, FileRef, _Ticket | None]] = deque()
    since_counted = 0
    warmed = False

    def finish_oldest() -> None:
        """Record the oldest file (waiting for it), and with it, in parallel uploads, the files
        behind it whose outcomes are already in: one transaction for the run (`_store_many`)."""
        nonlocal since_counted
        most, least = (RECORD_RUN, RECORD_LEAST) if preparer.parallel else (1, 1)
        run: list[tuple[Item, FileRef, _Ticket | None]] = []
        outcomes: list[Prepared | Refused] = []

        def take() -> None:  # the next file's outcome, waiting for it
            run.append(pending.popleft())
            outcomes.append(preparer.outcome(run[-1][0], run[-1][2]))

        try:
            while pending and len(run) < least:
                take()
            while pending and len(run) < most and preparer.ready(pending[0][2]):
                take()
            files = [
                (ref, outcome) for (_item, ref, _ticket), outcome in zip(run, outcomes, strict=True)
            ]
            if len(files) == 1:
                records = [_store(upload=upload, name=files[0][0], prepared=files[0][1])]
            else:
                records = _store_many(upload=upload, files=files)
        except BaseException:
            for outcome in outcomes:
                if isinstance(outcome, Prepared):  # not stored: its output goes too
                    Path(outcome.tmp_path).unlink(missing_ok=True)
            raise
        finally:
            for item, _ref, _ticket in run:
                item.discard()
        since_counted += len(run)
        if since_counted >= COUNTER_BATCH:
            _counters_refresh(upload.pk)
            since_counted = 0
        if on_file:
            for record, (_item, ref, _ticket) in zip(records, run, strict=True):
                on_file(record, ref)

    try:
        preparer = _Preparer(total - len(already), site_key=key, limits=limits, tmp_dir=tmp_dir)
        ahead = preparer.ahead + (RECORD_LEAST if preparer.parallel else 0)
        with preparer:
            for item, ref in _numbered(sources, zip_limits, work_dir):
                if (ref.index, ref.entry) in already:
                    item.discard()
                    continue
                ticket = preparer.submit(str(item.path)) if item.path is not None else None
                pending.append((item, ref, ticket))
                if len(pending) > ahead and not warmed:
                    # The workers are busy: the message at the end is made ready meanwhile.
                    outbox.warm()
                    warmed = True
                while len(pending) > ahead:  # files read ahead of the recording
                    finish_oldest()
            while pending:
                finish_oldest()
        upload = _finish(upload)
    except BaseException as exc:
        for item, _ref, _ticket in pending:  # their outputs went with the preparer
            item.discard()
        # The type and the code path only: an exception's message can carry a file's path,
        # and paths carry uploaders' names.
        trace = "".join(traceback.format_tb(exc.__traceback__))
        log.error("upload %s failed (%s)\n%s", upload.pk, type(exc).__name__, trace)
        _fail(upload, f"ingest stopped: {type(exc).__name__}")
        raise
    finally:
        staging.sweep(upload.uuid.hex)
    log.info(
        "upload %s done: %s accepted, %s duplicates, %s rejected",
        upload.pk,
        upload.accepted_count,
        upload.duplicate_count,
        upload.rejected_count,
    )
    return upload


def _numbered(
    sources: list[Source], zip_limits: ZipLimits, work_dir: Path
) -> Iterator[tuple[Item, FileRef]]:
    """Every item of `sources` with its position: folders are walked in the order archive
    walks them, each file is the next index, and each entry of an archive the next entry."""
    for index, source in enumerate(_files_of(sources), 1):
        label = source.name or source.path.name
        entry = 0
        for item in iter_items([source], zip_limits, work_dir):
            if item.name == label:
                yield item, FileRef(index, None, item.name)
            else:
                entry += 1
                yield item, FileRef(index, entry, item.name)


def _files_of(sources: list[Source]) -> Iterator[Source]:
    """Folders opened into their files, named as `archive` names a folder's files."""
    for source in sources:
        if not source.path.is_dir():
            yield source
            continue
        for folder, dirs, files in os.walk(source.path):
            dirs.sort()
            for filename in sorted(files):
                path = Path(folder) / filename
                relative = path.relative_to(source.path).as_posix()
                name = f"{source.name}/{relative}" if source.name else relative
                yield Source(path=path, name=name)


def _begin(upload: Upload, total: int) -> Upload:
    with transaction.atomic():
        locked = _lock(upload)
        if locked.status not in _OPEN:
            raise IngestError(f"upload {locked.pk} is {locked.status}; it cannot be processed")
        Upload.objects.filter(pk=locked.pk).update(
            status=Upload.Status.PROCESSING,
            started_at=locked.started_at or timezone.now(),
            total_files=total,
        )
    return Upload.objects.select_related("site").get(pk=upload.pk)


def _finish(upload: Upload) -> Upload:
    with transaction.atomic():
        locked = _lock(upload)
        _counters_refresh(locked.pk)
        if locked.status == Upload.Status.PROCESSING:
            Upload.objects.filter(pk=locked.pk).update(
                status=Upload.Status.DONE, finished_at=timezone.now()
            )
        upload.refresh_from_db()
        if upload.status == Upload.Status.DONE and upload.accepted_count:
            # The predictions app queues its images once this commits (a nudge: what the
            # broker loses, predictions' sweep finds in the done upload without a job).
            outbox.send_on_commit(UPLOAD_DONE_TASK, args=[upload.pk])
    return upload


CRASH_REASON = (
    "the file crashed the image decoder (the process reading it died); it cannot be read safely"
)


@dataclass(eq=False)
class _Ticket:
    """One file given to `_Preparer`: its outcome is known (run here, or run again after a
    crash), or is item `index` of a chunk's answer once the chunk is sent and done."""

    source: str | bytes  # a path, or a received file's bytes
    result: Prepared | Refused | Exception | None = None
    chunk: Future | None = None
    index: int = 0


CHUNK_FILES = 8  # files per round trip to a worker process, at most


class _Preparer:
    """Runs `prepare` on each file: in worker processes when the upload is large enough, and
    at once in this process for small ones (which do not pay for starting processes), except
    for files that may reach a native image codec (compressed transfer syntaxes), which always
    run in a worker process.

    Workers take files in chunks of up to CHUNK_FILES, so that a round trip to a worker (a
    wakeup of the pool's threads, a pickled call and answer) is paid once per chunk. A worker
    that dies on a file (a native codec crash) breaks the pool and fails every chunk in flight
    with it. Their files are then run again one at a time in a process of their own, so that
    the one that kills its process again is known and costs only itself (a rejection); the
    rest of the upload goes on in a new pool. An uncompressed or deflated file run here has
    no such protection, and needs none: no native codec reads it.
    """

    def __init__(
        self,
        files: int,
        *,
        site_key: bytes,
        limits: Limits,
        tmp_dir: Path,
        fn: Callable[..., Prepared | Refused] | None = None,
        keep_pool: bool = False,
    ):
        count = settings.INGEST["WORKERS"]
        self.parallel = count > 1 and files >= settings.INGEST["PARALLEL_MIN_FILES"]
        self.workers = count if self.parallel else 1
        # Enough chunks for every worker to have one queued behind the one it runs.
        self.chunk = max(1, min(CHUNK_FILES, files // (4 * self.workers))) if self.parallel else 1
        self.ahead = max(8 * self.workers, 2 * self.workers * self.chunk + self.chunk)
        # This upload's outputs, in a folder of its own: those of files whose answer was lost
        # when a worker died (prepared, but run again) go with it at the end.
        self._out = Path(tempfile.mkdtemp(prefix="ingest-", dir=tmp_dir))
        # `fn` None is `prepare`, named so that neither this process nor the call sent to a
        # worker imports it (`outcomes`): the workers have it, and this process may never need it.
        self._fn, self._args = fn, (site_key, limits, str(self._out))
        self._pool: ProcessPoolExecutor | None = None  # started with the first file sent
        # A long-lived process's uploads share a pool that outlives them (`workers.kept_pool`).
        self._keep_pool = keep_pool
        if self.parallel:
            workers.start(wait=False)
        self._batch: list[_Ticket] = []  # not sent yet
        self._chunks: dict[Future, list[_Ticket]] = {}  # sent, in submission order

    def submit(self, source: str | bytes) -> _Ticket:
        """A file by its path, or by its bytes when a peer sent it (`Stream`): bytes go to a
        worker process as they are, never through a file."""
        ticket = _Ticket(source)
        # Until the fork server has imported `prepare` (about half a second after this
        # process's first parallel upload began), the files it could take are prepared here
        # if this process has `prepare` already; one that has not waits for the workers
        # rather than spend as long importing it (`manage.py ingest`, whose fork server
        # started with it).
        inline = not self.parallel or (
            not workers.ready.is_set() and "portal.ingest.prepare" in sys.modules
        )
        if inline and not _isolated(source):
            try:
                ticket.result = (self._fn or prepare_file)(source, *self._args)
            except Exception as exc:
                ticket.result = exc
            return ticket
        self._batch.append(ticket)
        if len(self._batch) >= self.chunk:
            self._send()
        return ticket

    def _send(self) -> None:
        batch, self._batch = self._batch, []
        if self._pool is None:
            keep = self._keep_pool
            self._pool = (workers.kept_pool if keep else workers.new_pool)(self.workers)
        sources = [t.source for t in batch]
        try:
            chunk = self._pool.submit(prepare_many, self._fn, sources, *self._args)
        except BrokenExecutor as exc:
            # The pool broke since this upload last sent (a crash, in a kept pool perhaps
            # another upload's): the chunk fails as those in flight did, and `_recover` runs
            # its files again.
            chunk = Future()
            chunk.set_exception(exc)
        for index, ticket in enumerate(batch):
            ticket.chunk, ticket.index = chunk, index
        self._chunks[chunk] = batch

    def ready(self, ticket: _Ticket | None) -> bool:
        """Whether the file's outcome can be taken without waiting."""
        return (
            ticket is None
            or ticket.result is not None
            or (ticket.chunk is not None and ticket.chunk.done())
        )

    def outcome(self, item: Item, ticket: _Ticket | None) -> Prepared | Refused:
        if ticket is None:
            return Refused(item.reason or "unreadable")
        result = self._result(ticket)
        if isinstance(result, OSError):
            raise result  # the server's disk, not the file: see `prepare`
        if isinstance(result, Exception):  # `prepare` refuses bad files itself; a last resort
            return Refused(f"the file could not be processed ({type(result).__name__})")
        return result

    def _result(self, ticket: _Ticket) -> Prepared | Refused | Exception:
        if ticket.result is None and ticket.chunk is None:
            self._send()  # the oldest file is waiting in a chunk not yet full
        if ticket.result is None:
            assert ticket.chunk is not None
            try:
                ticket.result = ticket.chunk.result()[ticket.index]
            except BrokenExecutor:
                self._recover()
            except Exception as exc:  # the chunk's call itself failed (not one file)
                ticket.result = exc
        if ticket.chunk is not None and ticket.index == len(self._chunks.get(ticket.chunk, ())) - 1:
            self._chunks.pop(ticket.chunk, None)  # its last file: every outcome is taken
        assert ticket.result is not None
        return ticket.result

    def _recover(self) -> None:
        broken = [
            ticket
            for chunk, tickets in self._chunks.items()
            if isinstance(chunk.exception(), BrokenExecutor)
            for ticket in tickets
            if ticket.result is None
        ]
        log.warning("an ingest worker died; %d files in flight are retried one by one", len(broken))
        assert self._pool is not None
        workers.discard(self._pool)  # when it was kept: the next chunk starts a new one
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
        solo = workers.new_pool(1)
        try:
            for ticket in broken:
                try:
                    call = solo.submit(prepare_many, self._fn, [ticket.source], *self._args)
                    ticket.result = call.result()[0]
                except BrokenExecutor:
                    ticket.result = Refused(CRASH_REASON)
                    solo.shutdown(wait=True)
                    solo = workers.new_pool(1)
                except Exception as exc:
                    ticket.result = exc
        finally:
            solo.shutdown(wait=True)

    def __enter__(self) -> "_Preparer":
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None and self._keep_pool:
            # Others' uploads go on in the kept pool: this one's chunks are cancelled, or
            # waited for where a worker has them, before their folder goes.
            for chunk in self._chunks:
                chunk.cancel()
            wait(list(self._chunks))
        elif self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        # Outputs never recorded (the upload failed, or a worker died after writing one).
        shutil.rmtree(self._out, ignore_errors=True)


ingest_workers_start = workers.start  # the name services export


def _isolated(source: str | bytes) -> bool:
    """Whether a file must be read in a worker process even in a small upload: a native codec
    that crashes on it would otherwise take this process (a Celery worker) with it."""
    from portal.ingest.dicom import may_need_native_decoder, native_decoder_needed  # noqa: PLC0415

    if isinstance(source, bytes):
        return native_decoder_needed(source)
    try:
        return may_need_native_decoder(Path(source))
    except OSError:
        return False  # unreadable: `prepare` rejects it without decoding anything
