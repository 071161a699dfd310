"""Real DICOM peers for tests and benchmarks: an Orthanc server (Debian package `orthanc`) on
free ports with storage of its own, driven through its REST API as a hospital PACS is."""

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def orthanc_binary() -> str | None:
    """Orthanc's server, where the Debian package puts it (/usr/sbin, which the PATH of a user
    other than root may lack) or on the PATH."""
    return shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Orthanc:
    """A running Orthanc: `rest(...)` calls its REST API; `stop()` ends it and drops its storage.

    `modalities` names the DICOM peers it may send to: {name: (AE title, host, port)}; with
    `dicom=True` it also listens for DICOM itself (as `aet`, on `dicom_port`); `plugins` are
    the paths of plugins to load (DICOMweb's serves /dicom-web/)."""

    def __init__(
        self,
        work: Path,
        *,
        aet: str = "ORTHANC",
        modalities: dict[str, tuple[str, str, int]] | None = None,
        dicom: bool = False,
        plugins: list[str] | None = None,
    ) -> None:
        binary = orthanc_binary()
        if binary is None:
            raise FileNotFoundError("Orthanc is not installed (Debian package `orthanc`)")
        self.http_port, self.dicom_port = free_port(), free_port()
        self.aet = aet
        self.storage = work / "orthanc-db"
        work.mkdir(parents=True, exist_ok=True)
        config = work / "orthanc.json"
        config.write_text(
            json.dumps(
                {
                    "StorageDirectory": str(self.storage),
                    "IndexDirectory": str(self.storage),
                    "HttpPort": self.http_port,
                    "DicomServerEnabled": dicom,
                    "DicomPort": self.dicom_port,
                    "DicomAet": aet,
                    "DicomCheckCalledAet": False,
                    "DicomModalities": {k: list(v) for k, v in (modalities or {}).items()},
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": False,
                    "Plugins": plugins or [],
                    "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
                }
            )
        )
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc = subprocess.Popen(
            [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/system", timeout=1).read()  # noqa: S310 (http)
                return
            except OSError as exc:
                if self.proc.poll() is not None:
                    status = self.proc.returncode
                    raise RuntimeError(f"Orthanc exited at start (status {status})") from exc
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Orthanc did not answer within 30 s")

    def rest(self, method: str, path: str, body: bytes | dict | list | None = None) -> object:
        """One REST call; a JSON answer is decoded, anything else returned as bytes."""
        data = json.dumps(body).encode() if isinstance(body, dict | list) else body
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 (http)
            payload = response.read()
            if response.headers.get_content_type() == "application/json":
                return json.loads(payload)
            return payload

    def store(self, path: Path) -> str:
        """Store a file in Orthanc (as a modality would have): its Orthanc instance id."""
        return self.rest("POST", "/instances", path.read_bytes())["ID"]  # type: ignore[index]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.storage, ignore_errors=True)
