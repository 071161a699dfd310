"""An upload whose files arrive one at a time from a peer that waits for each answer: a DICOM
association (C-STORE) or a STOW-RS request. Each file is checked, de-identified and committed
before `add` returns, so that what the sender is told is what the portal holds."""

import logging
import os
import tempfile
from pathlib import Path

from django.db import transaction

from portal.core.files import data_folder
from portal.ingest import staging
from portal.ingest.archive import Item
from portal.ingest.dicom import native_decoder_needed
from portal.ingest.models import Site, Upload, UploadFile
from portal.ingest.services.processing import _begin, _finish, _image_limits, _Preparer
from portal.ingest.services.store import FileRef, _counters_refresh, _store
from portal.ingest.services.uploads import upload_create

log = logging.getLogger(__package__)

# Report lines between two updates of the upload's counters (the Uploads page's progress).
COUNTER_EVERY = 20


class Stream:
    """One streamed upload: `add` each file as it arrives, then `close`."""

    def __init__(self, *, site: Site, source: str, sender: str = "", user=None) -> None:
        upload = upload_create(site=site, source=source, user=user)
        if sender:
            Upload.objects.filter(pk=upload.pk).update(sender=sender[:80])
        self.upload = _begin(upload, 0)
        self._staging = staging.folder(self.upload.uuid.hex)
        self._staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        # One preparer for the whole upload: a compressed file is read in a worker process
        # (a native codec that crashes costs that file), which then serves the next one.
        self._preparer = _Preparer(
            1,
            site_key=site.pseudonym_key.encode(),
            limits=_image_limits(),
            tmp_dir=data_folder("tmp"),
        )
        self._count = 0

    def add(self, data: bytes | memoryview, name: str = "") -> UploadFile:
        """Ingest one received Part 10 file (its bytes) as the next file of the upload; its
        report line is committed when this returns."""
        self._count += 1
        ref = FileRef(self._count, None, name or f"instance {self._count}")
        path = None
        try:
            if native_decoder_needed(data):
                # A compressed film is read in a worker process, which takes a file.
                fd, path = tempfile.mkstemp(prefix="received-", suffix=".dcm", dir=self._staging)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            ticket = self._preparer.submit(path or bytes(data))
            outcome = self._preparer.outcome(Item(name=ref.name), ticket)
            record = _store(upload=self.upload, name=ref, prepared=outcome)
        finally:
            if path:
                Path(path).unlink(missing_ok=True)
        if self._count % COUNTER_EVERY == 0:  # the Uploads page's progress, now and then
            Upload.objects.filter(pk=self.upload.pk).update(total_files=self._count)
            _counters_refresh(self.upload.pk)
        return record

    def close(self) -> Upload:
        """The sender is done, or went away (an abort, a dropped connection): what was
        acknowledged is stored either way; the counters are final and predictions start."""
        try:
            self._preparer.__exit__(None, None, None)
            with transaction.atomic():
                Upload.objects.filter(pk=self.upload.pk).update(total_files=self._count)
            self.upload = _finish(self.upload)
        finally:
            staging.sweep(self.upload.uuid.hex)
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
