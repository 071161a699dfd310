"""The staging folder: identified files wait here between the request that brought them and
the ingest that de-identifies them, and nowhere else.

Every upload has its own folder, named by the upload's random token (never its primary key,
which SQLite can hand out again after a rollback). A received file is named by its index in
the upload; each batch of files adds one manifest that maps indexes to the uploader's names.
The folder goes when the upload ends in any way (done, failed, expired).
"""

import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from portal.ingest.uploadhandler import RejectedUpload

INCOMING = "incoming"  # Django's FILE_UPLOAD_TEMP_DIR: parts of requests in flight
MANIFEST_GLOB = "batch-*.jsonl"


class StagingError(Exception):
    """The staged files of an upload are not all there."""


@dataclass(frozen=True)
class StagedFile:
    index: int
    path: Path
    name: str
    reason: str | None = None  # refused while it was received (too large): no file


def root() -> Path:
    return Path(settings.STAGING_DIR)


def folder(token: str) -> Path:
    return root() / token


def clean_name(name: str) -> str:
    """The uploader's relative path for a file, with forward slashes and no leading one."""
    return (name or "unnamed").replace("\\", "/").lstrip("/")[:1000] or "unnamed"


def _move(uploaded: UploadedFile, target: Path) -> None:
    """A received file is already on disk (FILE_UPLOAD_TEMP_DIR, inside staging): rename it,
    never open it, so that a request with 20,000 files needs no descriptor per file."""
    if hasattr(uploaded, "temporary_file_path"):
        os.replace(uploaded.temporary_file_path(), target)
        return
    with open(target, "wb") as out:  # an in-memory file (only when a caller builds one)
        for chunk in uploaded.chunks():
            out.write(chunk)


def stage(token: str, first_index: int, files: Sequence[tuple[str, UploadedFile]]) -> None:
    """Put a batch into the upload's folder as files `first_index`, `first_index + 1`, ...

    The names a retried batch uses are the same, so a batch whose transaction rolled back is
    overwritten by the next one; on an error here nothing of this batch stays behind."""
    staging = folder(token)
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    moved: list[Path] = []
    manifest = staging / f"batch-{first_index:07d}.jsonl"
    partial = manifest.with_suffix(".part")
    try:
        lines = []
        for offset, (name, uploaded) in enumerate(files):
            index = first_index + offset
            target = staging / f"{index:07d}.dcm"
            line = {"index": index, "file": target.name, "name": name}
            if isinstance(uploaded, RejectedUpload):
                line["reason"] = uploaded.rejection
            else:
                _move(uploaded, target)
                moved.append(target)
            lines.append(json.dumps(line))
        partial.write_text("".join(f"{line}\n" for line in lines))
        os.replace(partial, manifest)
    except BaseException:
        for path in [*moved, partial]:
            path.unlink(missing_ok=True)
        raise


def staged_files(token: str, received: int) -> list[StagedFile]:
    """The upload's files 1..`received` in order (later indexes came from a batch whose
    transaction rolled back and are left out). `StagingError` if any is missing."""
    staging = folder(token)
    found: dict[int, StagedFile] = {}
    for manifest in sorted(staging.glob(MANIFEST_GLOB)):
        for line in manifest.read_text().splitlines():
            entry = json.loads(line)
            if entry["index"] <= received:
                found[entry["index"]] = StagedFile(
                    entry["index"], staging / entry["file"], entry["name"], entry.get("reason")
                )
    missing = [
        i
        for i in range(1, received + 1)
        if i not in found or (found[i].reason is None and not found[i].path.exists())
    ]
    if missing:
        raise StagingError(f"{len(missing)} of {received} staged files are missing")
    return [found[i] for i in range(1, received + 1)]


def sweep(token: str) -> None:
    """Delete the upload's folder and everything in it."""
    shutil.rmtree(folder(token), ignore_errors=True)


def sweep_orphans(*, keep: Iterable[str], older_than_s: float) -> int:
    """Delete staging folders of no open upload (`keep`: the tokens of open ones) and
    incoming parts left by aborted requests, once untouched for `older_than_s` (a folder made
    by a request still in flight is younger). Returns how many entries went."""
    keep = set(keep)
    cutoff = time.time() - older_than_s
    removed = 0
    base = root()
    candidates = [p for p in base.iterdir() if p.name != INCOMING] if base.exists() else []
    incoming = base / INCOMING
    if incoming.exists():
        candidates += list(incoming.iterdir())
    for path in candidates:
        if path.name in keep:
            continue
        try:
            if path.lstat().st_mtime > cutoff:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed
