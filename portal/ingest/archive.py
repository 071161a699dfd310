"""Walking what an uploader gives us (files, folders, ZIP archives) one file at a time.

Archives are read entry by entry into a private temporary file, never by the entry's own
name, so nothing is ever written outside the temporary folder; unsafe entries (path traversal,
absolute paths, symlinks, nested archives, encryption) and archives over the size or ratio
limits are reported as rejected items. Memory stays bounded: an entry is streamed to disk.
"""

import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ZIP_MAGIC = b"PK\x03\x04"
NESTED = "nested archive; archives inside archives are not opened"
# Operating-system litter and DICOMDIR indexes carry no image; they are skipped, not rejected.
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "dicomdir"}


@dataclass(frozen=True)
class ZipLimits:
    max_uncompressed_bytes: int
    max_ratio: float
    max_entries: int
    # Any one file, given on its own or inside an archive (PORTAL_MAX_FILE_BYTES); an archive
    # itself is bounded by the limits above instead.
    max_file_bytes: int | None = None


def too_large_reason(size: int, limit: int) -> str:
    return (
        f"file too large: {size} bytes, over the limit of {limit} bytes per file "
        "(PORTAL_MAX_FILE_BYTES)"
    )


@dataclass(frozen=True)
class Source:
    """One thing given to ingest: `name` prefixes the report names of what it holds."""

    path: Path
    name: str
    # Set for a file that was refused before it was stored (over the size limit while it
    # was received): it is reported as rejected with this reason, and `path` is not read.
    reason: str | None = None

    @classmethod
    def given(cls, path: Path) -> "Source":
        """A path given on the command line: folders and ZIPs name their files relative to
        themselves, a single file by its own name."""
        return cls(path=path, name="" if path.is_dir() or is_zip(path) else path.name)


@dataclass(frozen=True)
class Item:
    """A file to ingest (`path`), or one already rejected with `reason`. A `temporary` file
    (extracted from an archive) belongs to the consumer, who deletes it when done."""

    name: str
    path: Path | None = None
    reason: str | None = None
    temporary: bool = False

    def discard(self) -> None:
        if self.temporary and self.path is not None:
            self.path.unlink(missing_ok=True)


def is_junk(name: str) -> bool:
    parts = PurePosixPath(name).parts
    base = parts[-1].lower() if parts else ""
    return base in _JUNK_NAMES or base.startswith("._") or "__MACOSX" in parts


def looks_like_zip(head: bytes) -> bool:
    """A file's first 132 bytes start a ZIP archive (a DICOM file whose preamble happens to
    begin with the ZIP signature is DICOM: it says `DICM` at byte 128)."""
    return head[:4] == ZIP_MAGIC and head[128:132] != b"DICM"


def is_zip(path: Path) -> bool:
    with path.open("rb") as fh:
        return looks_like_zip(fh.read(132))


def is_readable_zip(path: Path) -> bool:
    """A ZIP archive that zipfile can open: its central directory is there and names its
    entries, each of which is then held to the per-file limit. Anything else that merely
    begins with the signature is just a file, held to the per-file limit itself."""
    if not is_zip(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False
    return True


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _walk(source: Source) -> Iterator[tuple[str, Path]]:
    if source.path.is_dir():
        for root, dirs, files in os.walk(source.path):
            dirs.sort()
            for filename in sorted(files):
                path = Path(root) / filename
                yield _join(source.name, path.relative_to(source.path).as_posix()), path
    else:
        yield source.name or source.path.name, source.path


def count_items(sources: list[Source], limits: ZipLimits) -> int:
    """How many report lines the sources will give (for progress bars), without extracting."""
    total = 0
    for source in sources:
        if source.reason is not None:
            total += 1
            continue
        for name, path in _walk(source):
            if is_junk(name):
                continue
            if path.is_symlink() or not is_zip(path):
                total += 1
                continue
            try:
                with zipfile.ZipFile(path) as zf:
                    infos = [i for i in zf.infolist() if not i.is_dir() and not is_junk(i.filename)]
                total += len(infos) if _archive_problem(path, infos, limits) is None else 1
            except (zipfile.BadZipFile, OSError):
                total += 1
    return total


def iter_items(sources: list[Source], limits: ZipLimits, tmp_dir: Path) -> Iterator[Item]:
    """Yield every file to ingest, one at a time."""
    for source in sources:
        if source.reason is not None:
            yield Item(name=source.name, reason=source.reason)
            continue
        # A ZIP given on its own (CLI) names its entries relative to itself.
        names_zip = source.path.is_dir() or bool(source.name)
        for name, path in _walk(source):
            if is_junk(name):
                continue
            if path.is_symlink():
                yield Item(name=name, reason="symbolic link; links are not followed")
            elif (
                limits.max_file_bytes is not None
                and (size := path.stat().st_size) > limits.max_file_bytes
                and not is_readable_zip(path)
            ):
                # Beginning with the ZIP signature exempts nothing: only an archive whose
                # entries are then limited one by one may be larger than a file.
                yield Item(name=name, reason=too_large_reason(size, limits.max_file_bytes))
            elif is_zip(path):
                yield from _iter_zip(path, name if names_zip else "", limits, tmp_dir)
            else:
                yield Item(name=name, path=path)


def _archive_problem(path: Path, infos: list[zipfile.ZipInfo], limits: ZipLimits) -> str | None:
    uncompressed = sum(i.file_size for i in infos)
    compressed = max(1, os.path.getsize(path))
    if len(infos) > limits.max_entries:
        return f"archive has {len(infos)} entries (limit {limits.max_entries})"
    if uncompressed > limits.max_uncompressed_bytes:
        return (
            f"archive would expand to {uncompressed} bytes (limit {limits.max_uncompressed_bytes})"
        )
    if uncompressed / compressed > limits.max_ratio:
        return (
            f"archive compression ratio {uncompressed / compressed:.0f} exceeds the limit "
            f"{limits.max_ratio:g} (a ZIP bomb?)"
        )
    return None


def _entry_problem(info: zipfile.ZipInfo, limits: ZipLimits) -> str | None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
        return "unsafe path in archive (absolute or escaping the folder)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link in archive; links are not followed"
    if info.flag_bits & 0x1:
        return "encrypted archive entry"
    if name.lower().endswith((".zip", ".tar", ".gz", ".tgz", ".7z", ".rar")):
        return NESTED
    if limits.max_file_bytes is not None and info.file_size > limits.max_file_bytes:
        return too_large_reason(info.file_size, limits.max_file_bytes)
    if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
        return f"entry compression ratio exceeds the limit {limits.max_ratio:g} (a ZIP bomb?)"
    return None


def _iter_zip(path: Path, prefix: str, limits: ZipLimits, tmp_dir: Path) -> Iterator[Item]:
    label = prefix or path.name
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        yield Item(name=label, reason="not a readable ZIP archive")
        return
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and not is_junk(i.filename)]
        if problem := _archive_problem(path, infos, limits):
            yield Item(name=label, reason=problem)
            return
        for info in infos:
            name = _join(prefix, info.filename)
            if problem := _entry_problem(info, limits):
                yield Item(name=name, reason=problem)
                continue
            extracted, error = _extract(zf, info, tmp_dir)
            if error or extracted is None:
                yield Item(name=name, reason=error)
            elif is_zip(extracted):
                extracted.unlink()
                yield Item(name=name, reason=NESTED)
            else:
                yield Item(name=name, path=extracted, temporary=True)


def _extract(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, tmp_dir: Path
) -> tuple[Path | None, str | None]:
    """Copy one entry to a private temporary file (never to a path named by the archive)."""
    fd, tmp_name = tempfile.mkstemp(prefix="zip-entry-", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out, zf.open(info) as entry:
            # zipfile stops at the declared size and checks the CRC, so a lying header
            # cannot expand past what the limits above allowed.
            shutil.copyfileobj(entry, out, 1024 * 1024)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        Path(tmp_name).unlink(missing_ok=True)
        return None, f"archive entry cannot be extracted ({type(exc).__name__})"
    return Path(tmp_name), None
