"""What preparing a file takes and gives, as plain data free of pydicom, numpy and Pillow: the
process that records an upload's files (`manage.py ingest`, a Celery worker, the web server)
receives these from the worker processes without importing what reads DICOM (a quarter of a
second of `manage.py ingest`'s start, whose time is its rate). `prepare` is imported where a
file is prepared: in the workers (their fork server loads it) or, for a small upload, here
on first use (`prepare_file`).
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    min_dimension: int = 64
    max_dimension: int = 8192
    max_aspect_ratio: float = 4.0


@dataclass(frozen=True)
class Age:
    days: int
    source: str  # "birthdate" | "patient_age"
    resolution_days: int


@dataclass(frozen=True)
class Deidentified:
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_pseudonym: str


@dataclass(frozen=True)
class Prepared:
    """A de-identified file waiting in `tmp_path` to be recorded and moved into storage."""

    tmp_path: str
    size_bytes: int
    sha256: str
    # sha256 of the Pixel Data value as the file stored it: the same film re-exported with
    # new UIDs has the same one.
    pixel_sha256: str
    ids: Deidentified
    age: Age
    sex: str
    acquisition: dict
    # What the report line warns of (`dicom.file_warnings`), one text each; empty for none.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    reason: str


# A report line's warnings are one text, one warning per line.
WARNING_SEPARATOR = "\n"


def warning_text(warnings: tuple[str, ...]) -> str:
    """The warnings as `UploadFile.warning` stores them ("" for none)."""
    return WARNING_SEPARATOR.join(warnings)


def prepare_file(
    source: str | bytes, site_key: bytes, limits: Limits, tmp_dir: str
) -> Prepared | Refused:
    """`prepare.prepare`, imported on the first call (looked up at each, so a test may patch
    it): what a process that records files runs for the files it prepares itself."""
    from portal.ingest import prepare  # noqa: PLC0415

    return prepare.prepare(source, site_key, limits, tmp_dir)


def prepare_many(
    fn: Callable[..., Prepared | Refused] | None, sources: list[str | bytes], *args: object
) -> list[Prepared | Refused | Exception]:
    """`fn(source, *args)` (`prepare_file` when None) for each file (a path, or its bytes), in
    order, in one call: how ingest's worker processes take files, a chunk at a time, so that
    the cost of a round trip to a worker is shared. An exception stays with its file (returned
    in its place) rather than costing the chunk."""
    fn = fn or prepare_file
    outcomes: list[Prepared | Refused | Exception] = []
    for source in sources:
        try:
            outcomes.append(fn(source, *args))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes
