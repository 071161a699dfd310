"""A real `manage.py dicom_listen` process against the test database, and films to send it."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from portal.core.processes import free_port
from portal.ingest.services import site_create
from portal.pacs import services
from tests.conftest import ROOT, _database_url
from tests.dicom_files import BIRTH_DATE, STUDY_DATE

RG1 = {
    "uncompressed": "RG1_UNCR.dcm",  # pydicom-data's real chest CR, MONOCHROME1
    "jpeg2000": "RG1_J2KR.dcm",  # the same film, JPEG 2000 lossless
}


class Listener:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port, self.tls_port = free_port(), free_port()
        self.log = data_dir / "dicom-listen.log"
        env = dict(
            os.environ,
            PORTAL_DATA_DIR=str(data_dir),
            DATABASE_URL=_database_url(),
            PORTAL_INGEST_WORKERS="1",
            PYTHONUNBUFFERED="1",
            **env,
        )
        command = ["dicom_listen", "--port", str(self.port), "--tls-port", str(self.tls_port)]
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"listener exited:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"listener not listening:\n{self.log.read_text()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def start_listener(transactional_db, data_dir: Path) -> Iterator:
    started: list[Listener] = []

    def start(**env: str) -> Listener:
        listener = Listener(data_dir, **env)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()


@pytest.fixture
def north(transactional_db):
    """Site north, called NORTH_AE, which STORESCU (from anywhere) and PACS (from 10.9.9.9
    only) may call."""
    site = site_create(slug="north")
    services.site_ae_set(site=site, ae_title="NORTH_AE", senders=["STORESCU", "PACS@10.9.9.9"])
    return site


def real_film(path: Path, name: str = "uncompressed", **attrs) -> Path:
    """pydicom-data's real chest CR in its own encoding, relabelled as a 4 y 10 m old's;
    each has a new SOP Instance UID but the same pixels (a second one is a duplicate)."""
    ds = pydicom.dcmread(get_testdata_file(RG1[name]))
    ds.PatientBirthDate, ds.StudyDate = BIRTH_DATE, STUDY_DATE
    ds.SOPInstanceUID = generate_uid()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path
