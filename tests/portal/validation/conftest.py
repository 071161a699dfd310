"""Fixtures of a second, empty portal (see `portals`)."""

import shutil
from pathlib import Path

import pytest

from tests.conftest import manage
from tests.portal.validation.portals import last_line, run_portal


@pytest.fixture(scope="module")
def migrated_portal(tmp_path_factory) -> Path:
    """An empty, migrated portal data folder (SQLite), copied by each test that needs one."""
    folder = tmp_path_factory.mktemp("portal2-template")
    result = run_portal(folder, "migrate", "--noinput", "-v0")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture
def untrusting_portal2(migrated_portal: Path, tmp_path: Path) -> Path:
    """A second portal that trusts no one yet."""
    folder = tmp_path / "portal2"
    shutil.copytree(migrated_portal, folder)
    return folder


@pytest.fixture
def portal2(untrusting_portal2: Path, data_dir: Path) -> Path:
    """A second portal that trusts this one's key, read as its operator would: the last line
    of `manage.py signing_key` here, `manage.py trusted_portal add` there."""
    key = manage("signing_key", "--skip-checks", data_dir=data_dir)
    assert key.returncode == 0, key.stderr
    added = run_portal(
        untrusting_portal2, "trusted_portal", "add", "portal1", last_line(key.stdout)
    )
    assert added.returncode == 0, added.stderr
    return untrusting_portal2
