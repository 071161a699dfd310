"""Ingest: every interface (web page, REST, CLI, Celery task) comes through here.

One file at a time: read, check, age, de-identify, de-duplicate, write, record, in one
transaction per file, so a bad file leaves nothing behind and never stops the rest.

`uploads` holds an upload's life (sites, receiving, submit, failure, expiry), `processing` the
ingest of its files (worker processes included), `store` what is written for each file. Tunables
(`processing.COUNTER_BATCH`, `processing.CHUNK_FILES`) are not re-exported here: they are read,
and so patched, in `processing`.
"""

from portal.ingest.services.processing import (
    CRASH_REASON,
    ingest_workers_start,
    upload_process,
    upload_process_staged,
)
from portal.ingest.services.store import DUPLICATE_REASON, FileRef, file_name_hash
from portal.ingest.services.streaming import Stream, streams_close_orphaned
from portal.ingest.services.uploads import (
    EXPIRE_TASK,
    PROCESS_TASK,
    RESEND_TASK,
    SITE_FIELDS,
    UPLOAD_DONE_TASK,
    IngestError,
    site_change,
    site_create,
    upload_create,
    upload_expire,
    upload_expire_stale,
    upload_receive_files,
    upload_resend,
    upload_submit,
)

__all__ = [
    "CRASH_REASON",
    "DUPLICATE_REASON",
    "EXPIRE_TASK",
    "PROCESS_TASK",
    "RESEND_TASK",
    "SITE_FIELDS",
    "Stream",
    "UPLOAD_DONE_TASK",
    "FileRef",
    "IngestError",
    "file_name_hash",
    "ingest_workers_start",
    "site_change",
    "site_create",
    "streams_close_orphaned",
    "upload_create",
    "upload_expire",
    "upload_expire_stale",
    "upload_process",
    "upload_process_staged",
    "upload_receive_files",
    "upload_resend",
    "upload_submit",
]
