"""Export of a frozen version and its import into another portal: the round trip through a
second, empty portal (its own database and data folder, `manage.py` in a subprocess) keeps
ages, sexes, sites and pixels; tampered or incomplete ZIPs and duplicates leave nothing behind;
the export task runs on a real worker."""

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from django.conf import settings
from pydicom.uid import RLELossless

from portal.ingest.archive import Source
from portal.ingest.models import Image
from portal.ingest.services import upload_create, upload_process
from portal.review.services import review_submit
from portal.validation import exports
from portal.validation.models import ValidationExport, ValidationSetVersion
from portal.validation.services import (
    ValidationSetError,
    validation_set_create,
    validation_set_freeze,
)
from tests.conftest import wait_for
from tests.dicom_files import make_dicom
from tests.portal import factories as f
from tests.portal.validation.portals import import_into, query, snapshot

STUDY = "20200115"
# name, site, sex, birth date, decision (None: confirm), extra make_dicom arguments
FILES = [
    ("a.dcm", "north", "F", "20150310", None, {}),
    ("b.dcm", "north", "M", "20190601", 400, {"photometric": "MONOCHROME1"}),
    ("c.dcm", "north", "M", "20100101", None, {"transfer_syntax": RLELossless}),
    ("d.dcm", "south", "F", "20180101", 800, {"bits_stored": 16}),
    ("e.dcm", "south", "M", "20121212", None, {}),
]


@dataclass
class World:
    version: ValidationSetVersion
    lead: object


def build_world(tmp_path: Path) -> World:
    """Two sites ingested through the real ingest service, reviewed, defined and frozen."""
    sites = {slug: f.site(slug) for slug in ("north", "south")}
    lead = f.user("lena", "lead", *sites.values())
    for slug, site in sites.items():
        folder = tmp_path / "incoming" / slug
        for seed, (name, where, sex, birth, _, extra) in enumerate(FILES):
            if where == slug:
                make_dicom(
                    folder / name, sex=sex, birth_date=birth, study_date=STUDY, seed=seed, **extra
                )
        upload = upload_process(
            upload=upload_create(site=site, source="cli"), sources=[Source.given(folder)]
        )
        assert upload.accepted_count == len(list(folder.iterdir())), upload.failure_reason
    for image, (*_, corrected, _) in zip(Image.objects.order_by("id"), FILES, strict=True):
        decide(image, lead, corrected)
    validation_set = validation_set_create(name="cxr-val", sites=list(sites.values()), user=lead)
    return World(version=validation_set_freeze(validation_set=validation_set, user=lead), lead=lead)


def decide(image: Image, reviewer, corrected_days: int | None = None) -> None:
    review_submit(
        image=image,
        reviewer=reviewer,
        decision="correct" if corrected_days else "confirm",
        age_days=corrected_days,
        reason="",
        comment="",
        expected_revision=image.revision,
    )


def decoded_sha256(path: Path) -> str:
    """Independent of `exports.pixel_sha256`: the decoded array's bytes (little-endian host)."""
    return hashlib.sha256(pydicom.dcmread(path).pixel_array.tobytes()).hexdigest()


def source_items(version: ValidationSetVersion, prefix: str = "") -> dict[str, tuple]:
    """pixel hash -> (curated age, sex, site) of each item of the version."""
    return {
        decoded_sha256(settings.DATA_DIR / item.image.file): (
            item.curated_age_days,
            item.sex,
            prefix + item.site.slug,
        )
        for item in version.items.select_related("image", "site")
    }


# The second portal: helpers in `portals`, fixtures in conftest.py --------------------------


def imported_items(folder: Path, set_name: str) -> dict[str, tuple]:
    rows = query(
        folder,
        "SELECT i.curated_age_days, i.sex, s.slug, img.file, img.sha256, i.sha256"
        " FROM validation_validationitem i"
        " JOIN validation_validationsetversion v ON v.id = i.version_id"
        " JOIN validation_validationset vs ON vs.id = v.validation_set_id"
        " JOIN ingest_site s ON s.id = i.site_id JOIN ingest_image img ON img.id = i.image_id"
        " WHERE vs.name = ?",
        set_name,
    )
    items = {}
    for age, sex, slug, file, image_sha, item_sha in rows:
        stored = folder / file
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == image_sha == item_sha
        items[decoded_sha256(stored)] = (age, sex, slug)
    return items


def rewrite_zip(source: Path, target: Path, *, change: str | None = None, drop: str | None = None):
    """Copy a ZIP member by member, flipping one byte of `change` or leaving out `drop`."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename == drop:
                continue
            data = bytearray(zin.read(info))
            if info.filename == change:
                data[-3] ^= 0x01  # in the pixel data, at the end of the file
            zout.writestr(info.filename, bytes(data))


# Tests ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_round_trip_into_an_empty_portal_keeps_ages_sexes_sites_and_pixels(tmp_path, portal2):
    world = build_world(tmp_path)
    zip_path = tmp_path / "cxr-val-v1.zip"

    summary = exports.export_write(version=world.version, out=zip_path)

    assert summary["items"] == len(FILES)
    assert summary["sha256"] == hashlib.sha256(zip_path.read_bytes()).hexdigest()
    result = import_into(portal2, zip_path, "--site-prefix", "ext-")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(
        f"imported cxr-val v1: {len(FILES)} items (signed by portal1 (key ed25519:"
    )
    assert imported_items(portal2, "cxr-val") == source_items(world.version, prefix="ext-")
    # Ingest de-identified again with the new sites' keys: new bytes, same pixels.
    new_hashes = {row[0] for row in query(portal2, "SELECT sha256 FROM ingest_image")}
    assert not new_hashes & {i.sha256 for i in world.version.items.all()}
    ((provenance, imported_sha),) = query(
        portal2,
        "SELECT v.provenance, s.imported_manifest_sha256 FROM validation_validationsetversion v"
        " JOIN validation_validationset s ON s.id = v.validation_set_id",
    )
    assert imported_sha == world.version.manifest_sha256
    origin = json.loads(provenance)["imported_from"]
    assert (origin["validation_set"], origin["version"]) == ("cxr-val", 1)
    assert origin["sites"] == {"north": "ext-north", "south": "ext-south"}
    assert (origin["signature"]["status"], origin["signature"]["signed_by"]) == (
        "signed",
        "portal1",
    )

    before = snapshot(portal2)
    again = import_into(portal2, zip_path, "--site-prefix", "other-")
    assert again.returncode == 1
    assert "already imported as cxr-val v1" in again.stderr
    assert snapshot(portal2) == before


@pytest.mark.django_db
def test_an_import_meeting_duplicates_on_ingest_is_undone_with_the_files_it_stored(
    tmp_path, portal2
):
    world = build_world(tmp_path)
    exports.export_write(version=world.version, out=tmp_path / "v1.zip")
    assert import_into(portal2, tmp_path / "v1.zip").returncode == 0
    # Version 2 holds one more image: ingest stores it, then finds the other five stored
    # already in these sites (duplicates), so the import fails and that stored file goes.
    north = world.version.validation_set.sites.get(slug="north")
    make_dicom(tmp_path / "more" / "f.dcm", sex="F", birth_date="20160101", seed=99)
    upload_process(
        upload=upload_create(site=north, source="cli"), sources=[Source.given(tmp_path / "more")]
    )
    decide(Image.objects.get(site=north, status="unreviewed"), world.lead)
    v2 = validation_set_freeze(validation_set=world.version.validation_set, user=world.lead)
    assert (v2.number, v2.item_count) == (2, len(FILES) + 1)
    exports.export_write(version=v2, out=tmp_path / "v2.zip")
    before = snapshot(portal2)

    result = import_into(portal2, tmp_path / "v2.zip")

    assert result.returncode == 1
    assert "duplicate on ingest into site north: same instance (SOPInstanceUID) as image" in (
        result.stderr
    )
    assert snapshot(portal2) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("change", "images/north/2.dcm: sha256 differs from the manifest (altered or corrupt)"),
        ("drop", "images/north/2.dcm: listed in manifest.csv but missing from the ZIP"),
    ],
)
def test_an_altered_or_missing_file_is_refused_by_name_and_nothing_is_kept(
    tmp_path, portal2, damage, message
):
    world = build_world(tmp_path)
    good = tmp_path / "good.zip"
    exports.export_write(version=world.version, out=good)
    bad = tmp_path / "bad.zip"
    rewrite_zip(good, bad, **{damage: "images/north/2.dcm"})
    before = snapshot(portal2)

    result = import_into(portal2, bad)

    assert result.returncode == 1
    assert message in result.stderr
    assert snapshot(portal2) == before
    assert before[0]["ingest_site"] == before[0]["ingest_image"] == 0


@pytest.mark.django_db
def test_export_fails_naming_a_stored_file_changed_since_freezing(tmp_path):
    world = build_world(tmp_path)
    item = world.version.items.select_related("image").order_by("image_id")[2]
    with (settings.DATA_DIR / item.image.file).open("ab") as stored:
        stored.write(b"\0\0")
    out = tmp_path / "out" / "set.zip"

    with pytest.raises(ValidationSetError, match=f"image {item.image_id}.*changed since freezing"):
        exports.export_write(version=world.version, out=out)

    assert list(out.parent.iterdir()) == []


@pytest.mark.django_db(transaction=True)
def test_export_task_on_a_real_worker_writes_the_zip_under_exports(tmp_path, default_worker):
    world = build_world(tmp_path)

    export = exports.export_start(version=world.version, user=world.lead)

    def finished() -> bool:
        export.refresh_from_db()
        return export.state in ("done", "failed")

    wait_for(finished, timeout_s=60, what="the export")
    assert (export.state, export.failure_reason) == ("done", "")
    assert export.done == export.total == len(FILES)
    assert export.file == "exports/cxr-val-v1.zip"
    path = settings.DATA_DIR / export.file
    data = path.read_bytes()
    assert (export.size_bytes, export.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    with zipfile.ZipFile(path) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
        manifest = json.loads(zf.read("manifest.json"))
        assert hashlib.sha256(zf.read("manifest.csv")).hexdigest() == manifest["files_sha256"]
        for row in rows:
            assert hashlib.sha256(zf.read(row["file"])).hexdigest() == row["sha256"]
    expected = [
        [str(i.image_id), i.site.slug, i.sex, str(i.curated_age_days), i.sha256]
        for i in world.version.items.select_related("site").order_by("image_id")
    ]
    fields = ["image", "site", "sex", "curated_age_days", "sha256"]
    assert [[r[k] for k in fields] for r in rows] == expected
    assert manifest["manifest_sha256"] == world.version.manifest_sha256
    # Redelivered or asked again: the done export stands, nothing is rebuilt.
    assert exports.export_run(export_id=export.pk).sha256 == export.sha256
    assert exports.export_start(version=world.version, user=world.lead).pk == export.pk
    assert ValidationExport.objects.count() == 1
