"""`manage.py backup` and `manage.py restore` in real subprocesses: a portal with images,
predictions, reviews, validation sets and tokens comes back whole in a new database and data
folder, and a damaged backup or a used target is refused before anything is written."""

import contextlib
import datetime
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from portal.accounts.models import Role
from portal.accounts.tokens import token_create
from portal.core import signing
from portal.ingest.models import Upload
from portal.predictions.integrity import file_sha256
from portal.review.services import review_submit
from portal.validation import services as validation
from tests.conftest import ROOT, _database_url
from tests.portal import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str, data_dir: Path, database_url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PORTAL_DATA_DIR=str(data_dir), DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@contextlib.contextmanager
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """A new, empty database of the same kind as the tests' own."""
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    name = f"{connection.settings_dict['NAME']}_restored"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _database_url().rsplit("/", 1)[0] + f"/{name}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_portal(data_dir: Path) -> int:
    """Two sites' images with files, predictions with heatmaps, a model folder, reviews, a
    frozen validation set, an API token; returns how many stored files rows name."""
    north, south = f.site("north"), f.site("south")
    lead = f.user("lena", Role.LEAD, north, south)
    reviewer = f.user("rita", Role.REVIEWER, north, south)
    token_create(actor=lead, user=reviewer, name="script")
    version = f.model_version("m1")
    (data_dir / "models" / "m1").mkdir(parents=True)
    (data_dir / "models" / "m1" / "weights.pt").write_bytes(b"weights" * 100)
    (data_dir / "models" / "m1" / "card.json").write_text('{"name": "m1"}')
    named = 0
    for i, s in enumerate([north, north, south]):
        image = f.image(s, dicom=True, age_days=800 + i)
        image.sha256 = file_sha256(data_dir / image.file)  # the factory's is a placeholder
        image.save(update_fields=["sha256"])
        prediction = f.prediction(image, version, age_days=900, heatmap=True)
        prediction.heatmap_sha256 = file_sha256(data_dir / prediction.heatmap)
        prediction.save(update_fields=["heatmap_sha256"])
        image.refresh_from_db()
        review_submit(
            image=image,
            reviewer=reviewer,
            decision="confirm",
            age_days=None,
            reason="",
            comment="",
            expected_revision=image.revision,
        )
        named += 2
    chosen = validation.validation_set_create(name="holdout", sites=[north, south], user=lead)
    frozen = validation.validation_set_freeze(validation_set=chosen, user=lead)
    assert frozen.items.count() == 3
    signing.own_public_key()  # the signing key, made on first use
    # Work in progress and secrets stay out of a backup.
    (data_dir / "staging" / "1").mkdir(parents=True)
    (data_dir / "staging" / "1" / "identified.dcm").write_bytes(b"PHI")
    (data_dir / "heatmaps" / "m1" / ".half.png.tmp").write_bytes(b"being written")
    return named


def dump(data_dir: Path, database_url: str) -> list[dict]:
    result = run("dumpdata", "--exclude", "sessions", data_dir=data_dir, database_url=database_url)
    assert result.returncode == 0, result.stderr
    return sorted(json.loads(result.stdout), key=lambda o: (o["model"], str(o["pk"])))


@pytest.mark.slow  # backs up, then migrates and restores a new database
def test_backup_restores_into_a_new_database_and_data_folder_with_everything(
    data_dir: Path, tmp_path: Path
) -> None:
    named = make_portal(data_dir)
    out = tmp_path / "backup"
    backed_up = run("backup", str(out), data_dir=data_dir, database_url=_database_url())
    assert backed_up.returncode == 0, backed_up.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    paths = {entry["path"] for entry in manifest["files"]}
    assert len(paths) == named + 2  # the images and heatmaps, and the model's two files
    assert not any(p.startswith("staging") or p.endswith(".tmp") for p in paths)
    assert manifest["database"]["counts"]["review.Review"] == 3

    restored = tmp_path / "restored"
    with fresh_database(tmp_path) as url:
        result = run("restore", str(out), data_dir=restored, database_url=url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{named} files checked: 0 missing, 0 altered, 0 orphaned" in result.stdout

        assert dump(restored, url) == dump(data_dir, _database_url())
        for path in paths:
            assert file_sha256(restored / path) == file_sha256(data_dir / path), path
        verified = run("verify_storage", "--json", data_dir=restored, database_url=url)
        assert verified.returncode == 0, verified.stdout
        assert json.loads(verified.stdout)["checked"] == named
        assert not (restored / "staging" / "1").exists()
        # The same signing key, owner-only in the backup and after the restore.
        key = data_dir / "signing_key.pem"
        for copy in (out / "signing_key.pem", restored / "signing_key.pem"):
            assert copy.read_bytes() == key.read_bytes()
            assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        printed = run("signing_key", data_dir=restored, database_url=url)
        assert printed.stdout.strip().splitlines()[-1] == signing.own_public_key()

        # A second restore into the same, now used, database is refused.
        again = run("restore", str(out), data_dir=tmp_path / "other", database_url=url)
        assert again.returncode == 1
        assert "the database is not empty" in again.stderr


def test_restore_refuses_a_damaged_backup_before_writing_anything(
    data_dir: Path, tmp_path: Path
) -> None:
    make_portal(data_dir)
    out = tmp_path / "backup"
    assert run("backup", str(out), data_dir=data_dir, database_url=_database_url()).returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    altered = out / "files" / manifest["files"][0]["path"]
    altered.write_bytes(altered.read_bytes() + b"\0")

    restored = tmp_path / "restored"
    with fresh_database(tmp_path) as url:
        result = run("restore", str(out), data_dir=restored, database_url=url)
        assert result.returncode == 1
        assert f"files/{manifest['files'][0]['path']}" in result.stderr
        assert not (restored / "images").exists()


def test_backup_refuses_a_folder_that_is_not_empty(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "backup"
    out.mkdir()
    (out / "old").write_text("x")
    result = run("backup", str(out), data_dir=data_dir, database_url=_database_url())
    assert result.returncode == 1
    assert "not empty" in result.stderr


def test_restore_refuses_a_data_folder_holding_another_signing_key(
    data_dir: Path, tmp_path: Path
) -> None:
    make_portal(data_dir)
    out = tmp_path / "backup"
    assert run("backup", str(out), data_dir=data_dir, database_url=_database_url()).returncode == 0
    restored = tmp_path / "restored"
    assert run("signing_key", data_dir=restored, database_url="sqlite://").returncode == 0

    with fresh_database(tmp_path) as url:
        result = run("restore", str(out), data_dir=restored, database_url=url)

    assert result.returncode == 1
    assert "holds another signing key: restore into a new data folder" in result.stderr
    assert not (restored / "images").exists()


@pytest.mark.django_db
def test_a_backup_keeps_every_timestamp_to_the_microsecond(tmp_path: Path) -> None:
    """Django's own JSON cuts datetimes to milliseconds: a restored portal would carry other
    times than the ones recorded (portal.core.exact_json)."""
    at = datetime.datetime(2026, 3, 4, 5, 6, 7, 45, tzinfo=datetime.UTC)
    upload = Upload.objects.create(site=f.site("north"), source=Upload.Source.CLI, started_at=at)
    out = tmp_path / "dump.json"
    call_command("dumpdata", "ingest.upload", output=str(out), verbosity=0)
    (row,) = json.loads(out.read_text())
    assert row["fields"]["started_at"] == "2026-03-04T05:06:07.000045Z"
    Upload.objects.filter(pk=upload.pk).update(started_at=None)
    call_command("loaddata", str(out), verbosity=0)
    assert Upload.objects.get(pk=upload.pk).started_at == at
