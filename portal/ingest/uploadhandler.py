"""Streaming uploads to disk with bounded sizes and no descriptor held per received file.

Django's `TemporaryFileUploadHandler` keeps every received file open until the request ends,
so a request with thousands of files runs out of descriptors ("Too many open files" near
1,000 files on a usual host). This handler writes each part to its own file in
`FILE_UPLOAD_TEMP_DIR` and closes it as soon as the part ends; the view gets a
`StagedUploadedFile` that only names it (`temporary_file_path()`), to be moved by rename.

Sizes are checked while the body streams: a file over `PORTAL_MAX_FILE_BYTES` is not stored
and arrives as a `RejectedUpload` that carries its rejection; a request over
`PORTAL_MAX_REQUEST_BYTES` is refused with 413. Only a real ZIP archive may be larger than a
file (its entries are checked one by one when it is opened): a part that begins with the ZIP
signature is kept past the limit, and refused as too large when it ends unless zipfile can
read it as an archive.
"""

import contextlib
import os
import tempfile
import weakref
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework import status
from rest_framework.exceptions import APIException

from portal.ingest.archive import is_readable_zip, looks_like_zip, too_large_reason


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class StagedUploadedFile(UploadedFile):
    """A received file, complete and closed on disk: like Django's `TemporaryUploadedFile`
    (`.name`, `.size`, `.temporary_file_path()`, deleted by `close()` at the end of the
    request unless it was moved away) but holding no descriptor. It is opened only if read."""

    def __init__(self, *, path: str, name: str, size: int, content_type: str, charset, extra):
        self._path = path
        self._file: BinaryIO | None = None
        # Also when the request fails before Django could close its files (another part too
        # large, too many files): the file goes with the object.
        self._remove = weakref.finalize(self, _remove_quietly, path)
        super().__init__(None, name, content_type, size, charset, extra)

    @property
    def file(self) -> BinaryIO:  # type: ignore[override]
        if self._file is None:
            self._file = open(self._path, "rb")  # noqa: SIM115 (closed by close())
        return self._file

    @file.setter
    def file(self, value: BinaryIO | None) -> None:
        self._file = value

    @property
    def closed(self) -> bool:
        return self._file is None or self._file.closed

    def temporary_file_path(self) -> str:
        return self._path

    def open(self, mode: str | None = None) -> "StagedUploadedFile":
        self.close_descriptor()
        self._file = open(self._path, mode or "rb")  # noqa: SIM115 (closed by close())
        return self

    def close_descriptor(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        """End of the request: a file the view did not move away is deleted, as Django's
        temporary uploads are, so no identified file outlives its request by accident."""
        self.close_descriptor()
        self._remove()


class RejectedUpload(UploadedFile):
    """A file that was not stored because of its size: `rejection` says why, for the
    upload's report. It has no content and no temporary file."""

    def __init__(self, *, name: str, size: int, rejection: str):
        super().__init__(None, name, "application/octet-stream", size)
        self.rejection = rejection

    def close(self) -> None:
        pass


class StagingUploadHandler(FileUploadHandler):
    """Every part to its own closed file in `FILE_UPLOAD_TEMP_DIR`, sizes bounded."""

    chunk_size = 1024 * 1024

    def __init__(self, request=None):
        super().__init__(request)
        self.max_file_bytes: int = settings.PORTAL_MAX_FILE_BYTES
        self.max_request_bytes: int = settings.PORTAL_MAX_REQUEST_BYTES
        self.request_bytes = 0
        self._out: BinaryIO | None = None
        self._path: str | None = None
        self._size = 0
        self._over = False
        self._zip: bool | None = None

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):  # noqa: N803
        if content_length and content_length > self.max_request_bytes:
            raise RequestTooLarge(self._request_message(content_length))
        return None

    def _request_message(self, size: int) -> str:
        return (
            f"request too large: {size} bytes, over the limit of {self.max_request_bytes} "
            "bytes per request (PORTAL_MAX_REQUEST_BYTES); send the files in several requests"
        )

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self._discard()
        self._size, self._over, self._zip = 0, False, None
        fd, self._path = tempfile.mkstemp(prefix="upload-", dir=settings.FILE_UPLOAD_TEMP_DIR)
        self._out = os.fdopen(fd, "wb")

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.request_bytes += len(raw_data)
        if self.request_bytes > self.max_request_bytes:
            self._discard()
            raise RequestTooLarge(self._request_message(self.request_bytes))
        self._size += len(raw_data)
        if self._over:
            return None
        assert self._out is not None
        if self._size > self.max_file_bytes and not self._may_be_archive(raw_data):
            self._over = True  # the rest of this part is read and dropped
            self._discard()
            return None
        self._out.write(raw_data)
        return None

    def _may_be_archive(self, chunk: bytes) -> bool:
        """Past the file limit: whether the part starts like a ZIP archive (its head read
        back from disk, then from the chunk not yet written)."""
        if self._zip is None:
            assert self._out is not None
            assert self._path is not None
            self._out.flush()
            with open(self._path, "rb") as fh:
                head = fh.read(132)
            self._zip = looks_like_zip(head + chunk[: 132 - len(head)])
        return self._zip

    def file_complete(self, file_size: int) -> UploadedFile:
        if not self._over and file_size > self.max_file_bytes:
            assert self._out is not None
            assert self._path is not None
            self._out.close()
            if not is_readable_zip(Path(self._path)):
                self._over = True
                self._discard()
        if self._over:
            return RejectedUpload(
                name=self.file_name,
                size=file_size,
                rejection=too_large_reason(file_size, self.max_file_bytes),
            )
        assert self._out is not None
        assert self._path is not None
        self._out.close()  # a no-op if closed above
        staged = StagedUploadedFile(
            path=self._path,
            name=self.file_name,
            size=file_size,
            content_type=self.content_type,
            charset=self.charset,
            extra=self.content_type_extra,
        )
        self._out, self._path = None, None
        return staged

    def _discard(self) -> None:
        """Drop the part being written (over its limit, or the upload stopped)."""
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._path is not None:
            _remove_quietly(self._path)
            self._path = None

    def upload_interrupted(self) -> None:
        self._discard()
