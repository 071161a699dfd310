"""A second portal for transfer tests: its own data folder, SQLite database and signing key,
driven through `manage.py` in a subprocess as its operator would (fixtures in conftest.py)."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def run_portal(folder: Path, command: str, *args: str) -> subprocess.CompletedProcess:
    """`manage.py` of the second portal: its own data folder and SQLite database. The system
    checks (every URLconf and view) are the web's business, not the import's."""
    env = dict(
        os.environ,
        PORTAL_DATA_DIR=str(folder),
        DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), command, "--skip-checks", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def import_into(folder: Path, zip_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_portal(folder, "validation_set", "import", str(zip_path), *extra)


def query(folder: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(folder / "db.sqlite3") as db:
        return db.execute(sql, params).fetchall()


TABLES = [
    "ingest_site",
    "ingest_upload",
    "ingest_uploadfile",
    "ingest_image",
    "validation_validationset",
    "validation_validationsetversion",
    "validation_validationitem",
    "accounts_auditevent",
]


def snapshot(folder: Path) -> tuple:
    """Row counts and every file of the portal but its database (folders that work creates
    empty, such as `tmp/`, do not count)."""
    counts = {t: query(folder, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}  # noqa: S608
    files = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if not p.name.startswith("db.sqlite3") and (p.is_file() or any(p.iterdir()))
    )
    return counts, files
