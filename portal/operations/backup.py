"""Backups of a whole portal, and restoring one into a fresh database and data folder.

A backup is a folder: `database.json` (every row, Django's dumpdata, so it restores into SQLite
or PostgreSQL alike), `files/` (the stored images, heatmaps, model folders and exports),
`manifest.json` (each file's size and sha256, the row count of each model and the migrations
the rows belong to), and `signing_key.pem`, the portal's private Ed25519 key, owner-only, so
that a restored portal signs its exports as the same portal (when it has made one). The rows
and the list of files come from one database snapshot, so every file a row names is in the
backup and no file that no row names is.
"""

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from portal.core import signing
from portal.ingest.models import Image
from portal.predictions.integrity import StorageReport, storage_verify
from portal.predictions.models import Prediction

FORMAT = 1
DATABASE_FILE = "database.json"
MANIFEST_FILE = "manifest.json"
FILES_DIR = "files"
SIGNING_KEY_FILE = "signing_key.pem"
# Folders whose files rows name (images, heatmaps) are copied file by file as the rows name
# them; the others whole. tmp/, staging/ (identified files in flight), static/, the secret key
# and the admin password file are never backed up.
NAMED_FOLDERS = ("images", "heatmaps")
WHOLE_FOLDERS = ("models", "exports")
# Sessions are logins in progress: a restored portal starts with none.
EXCLUDED = ("sessions",)
CHUNK = 1 << 20

Progress = Callable[[int, int], None]


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why."""


def _model_counts() -> dict[str, int]:
    counts = {}
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed or meta.app_label in EXCLUDED:
            continue
        counts[meta.label] = model._base_manager.count()
    return dict(sorted(counts.items()))


def _applied_migrations() -> list[list[str]]:
    return sorted([app, name] for app, name in MigrationRecorder(connection).applied_migrations())


def _files_under(root: Path, folder: str) -> Iterator[str]:
    """Relative paths of the files under `root/folder`, without work in progress (hidden names,
    `*.tmp`)."""
    for dirpath, dirnames, filenames in os.walk(root / folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and not name.endswith(".tmp"):
                yield Path(dirpath, name).relative_to(root).as_posix()


def _named_files(root: Path) -> list[str]:
    """The files under the named folders that a row names, plus the whole folders."""
    paths = []
    for folder in NAMED_FOLDERS:
        candidates = list(_files_under(root, folder))
        for start in range(0, len(candidates), 500):
            chunk = candidates[start : start + 500]
            named = set(Image.objects.filter(file__in=chunk).values_list("file", flat=True))
            named |= set(
                Prediction.objects.filter(heatmap__in=chunk).values_list("heatmap", flat=True)
            )
            paths += [p for p in chunk if p in named]
    for folder in WHOLE_FOLDERS:
        paths += list(_files_under(root, folder))
    return paths


def _copy(source: Path, target: Path, *, private: bool = False) -> tuple[int, str]:
    """Copy in chunks (memory stays flat), through a hidden temporary name; size and sha256.
    A `private` file is owner-only (0600) from its first byte."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.tmp")
    partial.unlink(missing_ok=True)
    digest = hashlib.sha256()
    size = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    with (
        source.open("rb") as src,
        open(os.open(partial, flags, 0o600 if private else 0o666), "wb") as dst,
    ):
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    partial.replace(target)
    return size, digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def backup_write(*, out: Path, progress: Progress | None = None) -> dict:
    """Write a backup of this portal into the new folder `out`; returns its manifest."""
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty: back up into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    root = Path(settings.DATA_DIR)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One snapshot for the dump, the counts and the file list (SQLite's write
            # transaction already is one: writers wait until it ends).
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        call_command(
            "dumpdata",
            exclude=list(EXCLUDED),
            use_base_manager=True,
            indent=None,
            output=str(out / DATABASE_FILE),
            verbosity=0,
        )
        counts = _model_counts()
        migrations = _applied_migrations()
        paths = _named_files(root)
    files = []
    for i, relative in enumerate(paths, 1):
        size, sha256 = _copy(root / relative, out / FILES_DIR / relative)
        files.append({"path": relative, "size": size, "sha256": sha256})
        if progress:
            progress(i, len(paths))
    key = signing.key_path()
    signing_key = None
    if key.is_file():
        _, sha256 = _copy(key, out / SIGNING_KEY_FILE, private=True)
        signing_key = {"file": SIGNING_KEY_FILE, "sha256": sha256}
    manifest = {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": {
            "vendor": connection.vendor,
            "file": DATABASE_FILE,
            "sha256": _sha256(out / DATABASE_FILE),
            "counts": counts,
            "migrations": migrations,
        },
        "files": files,
        "signing_key": signing_key,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _read_manifest(source: Path) -> dict:
    try:
        manifest = json.loads((source / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} has no readable {MANIFEST_FILE}: not a backup") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not {FORMAT}")
    return manifest


def _check_backup(source: Path, manifest: dict, progress: Progress | None) -> None:
    """Every file is there with its recorded sha256, before anything is written."""
    bad = []
    if _sha256(source / DATABASE_FILE) != manifest["database"]["sha256"]:
        bad.append(DATABASE_FILE)
    if key := manifest.get("signing_key"):
        path = source / SIGNING_KEY_FILE
        if not path.is_file() or _sha256(path) != key["sha256"]:
            bad.append(SIGNING_KEY_FILE)
    files = manifest["files"]
    for i, entry in enumerate(files, 1):
        relative = PurePosixPath(entry["path"])
        if relative.is_absolute() or ".." in relative.parts:
            raise BackupError(f"a file of the backup points outside the data folder: {relative}")
        path = source / FILES_DIR / relative
        if not path.is_file() or _sha256(path) != entry["sha256"]:
            bad.append(f"{FILES_DIR}/{entry['path']}")
        if progress:
            progress(i, len(files))
    if bad:
        raise BackupError(f"the backup is damaged (missing or altered): {', '.join(bad)}")


def _check_target(manifest: dict) -> None:
    """This portal's code knows every migration of the backup, and the database and the data
    folder hold nothing yet (a restore never merges)."""
    known = set(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)
    unknown = [f"{a}.{n}" for a, n in manifest["database"]["migrations"] if (a, n) not in known]
    if unknown:
        raise BackupError(
            f"the backup comes from a newer portal (unknown migrations: {', '.join(unknown)}): "
            "restore it with that version or later"
        )
    tables = set(connection.introspection.table_names())
    filled = [
        label
        for label, model in ((m._meta.label, m) for m in apps.get_models())
        if model._meta.db_table in tables
        and model._meta.app_label not in EXCLUDED
        and model not in (ContentType, Permission)
        and not model._meta.proxy
        and model._base_manager.exists()
    ]
    if filled:
        raise BackupError(
            f"the database is not empty ({', '.join(filled)}): restore into a new one"
        )
    root = Path(settings.DATA_DIR)
    for folder in NAMED_FOLDERS + WHOLE_FOLDERS:
        if next(_files_under(root, folder), None):
            raise BackupError(f"{root / folder} is not empty: restore into a new data folder")
    key = signing.key_path()
    wanted = manifest.get("signing_key")
    if wanted and key.exists() and _sha256(key) != wanted["sha256"]:
        raise BackupError(
            f"{key} holds another signing key: restore into a new data folder (a portal keeps "
            "its key, so that the portals trusting it still do)"
        )


def restore_read(*, source: Path, progress: Progress | None = None) -> StorageReport:
    """Restore the backup in `source` into this portal's (empty) database and data folder;
    returns the stored files checked against the restored rows."""
    manifest = _read_manifest(source)
    _check_backup(source, manifest, progress)
    _check_target(manifest)
    call_command("migrate", interactive=False, verbosity=0)
    _check_target(manifest)
    with transaction.atomic():
        # Migrating made the content types and permissions anew, perhaps with other ids than
        # the rows that point at them expect: the backup's own replace them.
        Permission.objects.all().delete()
        ContentType.objects.all().delete()
        ContentType.objects.clear_cache()
        call_command("loaddata", str(source / DATABASE_FILE), verbosity=0)
        counts = _model_counts()
        expected = manifest["database"]["counts"]
        differ = [k for k in expected if counts.get(k) != expected[k]]
        if differ:
            raise BackupError(f"restored row counts differ from the backup's: {', '.join(differ)}")
    ContentType.objects.clear_cache()
    root = Path(settings.DATA_DIR)
    for entry in manifest["files"]:
        _copy(source / FILES_DIR / entry["path"], root / entry["path"])
    if manifest.get("signing_key"):
        _copy(source / SIGNING_KEY_FILE, signing.key_path(), private=True)
    return storage_verify()
