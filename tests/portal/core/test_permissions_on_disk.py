"""Files the portal makes are its service user's alone, whatever umask started it: a database
dump, a secret key or a de-identified image must not be readable by other accounts."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.dicom_files import make_dicom


def _manage(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """A manage.py started the way a shell with the usual umask (022) would start it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SECRET_KEY")}
    env["PORTAL_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(0o022),  # noqa: PLW1509 (no threads started yet)
    )


def _others_can_reach(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def test_database_secret_key_and_stored_images_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    migrated = _manage(data, "migrate", "--noinput", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    film = tmp_path / "in" / "film.dcm"
    make_dicom(film)
    ingested = _manage(data, "ingest", str(film), "--site", "north", "--create-site", "-v", "0")
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr

    stored = list((data / "images").rglob("*.dcm"))
    assert len(stored) == 1
    made = [data / "db.sqlite3", data / "secret_key", stored[0]]
    made += [p for p in data.rglob("*") if p.is_dir()]
    assert data / "images" in made
    exposed = [str(p.relative_to(data)) for p in [data, *made] if _others_can_reach(p)]
    assert exposed == []
