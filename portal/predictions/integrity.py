"""Stored files against the database: every image file and heatmap re-hashed and compared with
the sha256 its row records, and every file under `images/` and `heatmaps/` that no row names.

Reads only; `manage.py verify_storage` is its interface.
"""

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from portal.ingest.models import Image
from portal.predictions.models import Prediction

# The folders whose files rows name; tmp/ and staging/ hold work in progress and are not read.
STORED_FOLDERS = ("images", "heatmaps")
CHUNK = 1 << 20  # hashing streams the file: memory stays flat whatever its size

Progress = Callable[[int, int], None]


@dataclass
class StorageReport:
    """Entries are `{"path", "image"}` for image files, `{"path", "prediction", "image"}` for
    heatmaps and `{"path"}` for orphans; paths relative to the data folder."""

    checked: int = 0
    missing: list[dict] = field(default_factory=list)
    altered: list[dict] = field(default_factory=list)
    orphaned: list[dict] = field(default_factory=list)
    # Heatmaps stored before the worker sent their sha256: present, but with nothing to compare.
    not_verifiable: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.altered or self.orphaned)

    def as_dict(self) -> dict:
        return {
            "checked": self.checked,
            "missing": self.missing,
            "altered": self.altered,
            "orphaned": self.orphaned,
            "not_verifiable": self.not_verifiable,
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _expected() -> Iterator[tuple[str, str, dict]]:
    """(relative path, expected sha256 or "", entry) for every file a row names."""
    for pk, path, sha256 in (
        Image.objects.order_by("pk").values_list("pk", "file", "sha256").iterator(chunk_size=2000)
    ):
        yield path, sha256, {"path": path, "image": pk}
    heatmaps = (
        Prediction.objects.exclude(heatmap="")
        .order_by("pk")
        .values_list("pk", "image_id", "heatmap", "heatmap_sha256")
        .iterator(chunk_size=2000)
    )
    for pk, image_id, path, sha256 in heatmaps:
        yield path, sha256, {"path": path, "prediction": pk, "image": image_id}


def _stored_files(root: Path) -> Iterator[str]:
    """Relative paths of the files under the stored folders, skipping hidden names (the
    worker writes a heatmap as `.<name>.tmp` and renames it)."""
    for folder in STORED_FOLDERS:
        for dirpath, dirnames, filenames in os.walk(root / folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith(".") and not name.endswith(".tmp"):
                    yield Path(dirpath, name).relative_to(root).as_posix()


def _named_by_a_row(paths: list[str]) -> set[str]:
    named: set[str] = set()
    for start in range(0, len(paths), 500):
        chunk = paths[start : start + 500]
        named.update(Image.objects.filter(file__in=chunk).values_list("file", flat=True))
        named.update(Prediction.objects.filter(heatmap__in=chunk).values_list("heatmap", flat=True))
    return named


def storage_verify(*, progress: Progress | None = None) -> StorageReport:
    """Re-hash every image file and heatmap the database names and list what is missing,
    altered, orphaned, or (heatmaps without a recorded hash) not verifiable."""
    root = Path(settings.DATA_DIR)
    report = StorageReport()
    total = Image.objects.count() + Prediction.objects.exclude(heatmap="").count()
    known: set[str] = set()
    for path, sha256, entry in _expected():
        known.add(path)
        target = root / path
        report.checked += 1
        if not target.is_file():
            report.missing.append(entry)
        elif not sha256:
            report.not_verifiable.append(entry)
        else:
            try:
                actual = file_sha256(target)
            except OSError as exc:
                report.altered.append({**entry, "error": f"cannot read: {exc.strerror}"})
            else:
                if actual != sha256:
                    report.altered.append(entry)
        if progress:
            progress(report.checked, max(total, report.checked))
    # A file ingested while the rows were read is named by a row by now: ask again.
    candidates = [p for p in _stored_files(root) if p not in known]
    named = _named_by_a_row(candidates)
    report.orphaned = [{"path": p} for p in candidates if p not in named]
    return report
