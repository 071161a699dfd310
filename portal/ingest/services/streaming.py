"""An upload whose files arrive one at a time from a peer: a DICOM association (C-STORE), which
waits for each answer, or a STOW-RS request, answered once its last part is in. Each file is
checked, de-identified and committed before the peer is answered about it, so that what the
sender is told is what the portal holds."""

import logging
from collections import deque

from django.conf import settings
from django.db import transaction

from portal.core.files import data_folder
from portal.ingest import staging
from portal.ingest.archive import Item
from portal.ingest.models import Site, Upload, UploadFile
from portal.ingest.services.processing import (
    _begin,
    _finish,
    _image_limits,
    _Preparer,
    _Ticket,
)
from portal.ingest.services.store import FileRef, _counters_refresh, _store_many
from portal.ingest.services.uploads import upload_create

log = logging.getLogger(__package__)

# Report lines between two updates of the upload's counters (the Uploads page's progress).
COUNTER_EVERY = 20
# Received bytes held waiting for their turn, at most (beyond the one being recorded).
AHEAD_BYTES = 256 * 1024 * 1024
# Prepared files recorded in one transaction, at most.
RUN_FILES = 16


class Stream:
    """One streamed upload: `add` each file as it arrives (a peer that waits for each answer),
    or `submit` them as they come and `drain` at the end (a peer that sends many at once);
    then `close`."""

    def __init__(
        self, *, site: Site, source: str, sender: str = "", user=None, many: bool = False
    ) -> None:
        upload = upload_create(site=site, source=source, user=user)
        if sender:
            Upload.objects.filter(pk=upload.pk).update(sender=sender[:80])
        self.upload = _begin(upload, 0)
        # One preparer for the whole upload. With `many` (STOW-RS) worker processes prepare
        # the next files while this one records the earlier ones; otherwise each file is
        # prepared here, except a compressed one, which a worker process reads (a native codec
        # that crashes costs that file).
        self._preparer = _Preparer(
            settings.INGEST["PARALLEL_MIN_FILES"] if many else 1,  # the least that is parallel
            site_key=site.pseudonym_key.encode(),
            limits=_image_limits(),
            tmp_dir=data_folder("tmp"),
            keep_pool=True,  # a receiver's process takes upload after upload
        )
        self._pending: deque[tuple[FileRef, _Ticket, int]] = deque()
        self._pending_bytes = 0
        self._count = self._taken = 0

    def add(self, data: bytes | memoryview, name: str = "") -> UploadFile:
        """Ingest one received Part 10 file (its bytes) as the next file of the upload; its
        report line is committed when this returns."""
        return [*self.submit(data, name), *self.drain()][-1]

    def submit(self, data: bytes | memoryview, name: str = "") -> list[UploadFile]:
        """Queue one received file; returns the report lines, committed and oldest first, of
        the files that had to be recorded to keep at most the preparer's `ahead` files (and
        AHEAD_BYTES) waiting."""
        self._count += 1
        ref = FileRef(self._count, None, name or f"instance {self._count}")
        data = bytes(data)
        self._pending.append((ref, self._preparer.submit(data), len(data)))
        self._pending_bytes += len(data)
        taken: list[UploadFile] = []
        while len(self._pending) > self._preparer.ahead or (
            len(self._pending) > 1 and self._pending_bytes > AHEAD_BYTES
        ):
            taken += self._take_run()
        return taken

    def drain(self) -> list[UploadFile]:
        """The report lines of every file still waiting, committed, oldest first."""
        taken: list[UploadFile] = []
        while self._pending:
            taken += self._take_run()
        return taken

    def _take_run(self) -> list[UploadFile]:
        """Record the oldest waiting file (waiting for it if need be) and those after it that
        are ready, in one transaction (`_store_many`: one lock, one insert, one commit)."""
        run = []
        while self._pending and len(run) < RUN_FILES:
            ref, ticket, size = self._pending[0]
            if run and not self._preparer.ready(ticket):
                break
            self._pending.popleft()
            self._pending_bytes -= size
            run.append((ref, self._preparer.outcome(Item(name=ref.name), ticket)))
        records = _store_many(upload=self.upload, files=run)
        before, self._taken = self._taken, self._taken + len(records)
        if self._taken // COUNTER_EVERY > before // COUNTER_EVERY:  # the Uploads page's progress
            Upload.objects.filter(pk=self.upload.pk).update(total_files=self._taken)
            _counters_refresh(self.upload.pk)
        return records

    def close(self) -> Upload:
        """The sender is done, or went away (an abort, a dropped connection): what was
        recorded is stored either way (a file still waiting was never acknowledged, and
        goes); the counters are final and predictions start."""
        try:
            self._preparer.__exit__(None, None, None)
            with transaction.atomic():
                Upload.objects.filter(pk=self.upload.pk).update(total_files=self._taken)
            self.upload = _finish(self.upload)
        finally:
            self._pending.clear()
        log.info(
            "streamed upload %s done: %s accepted, %s duplicates, %s rejected",
            self.upload.pk,
            self.upload.accepted_count,
            self.upload.duplicate_count,
            self.upload.rejected_count,
        )
        return self.upload


def streams_close_orphaned(*, source: str) -> int:
    """Finish the streamed uploads of `source` left processing by a receiver that died: every
    file in them was acknowledged only after its commit, so what they hold is complete."""
    closed = 0
    for upload in Upload.objects.filter(source=source, status=Upload.Status.PROCESSING):
        _counters_refresh(upload.pk)
        Upload.objects.filter(pk=upload.pk).update(
            total_files=UploadFile.objects.filter(upload_id=upload.pk).count()
        )
        _finish(upload)
        staging.sweep(upload.uuid.hex)
        closed += 1
    return closed
