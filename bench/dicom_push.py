"""PACS intake benchmark, every number from one run on this machine:

    python bench/dicom_push.py [--films 1000] [--batch 50] [--rounds 2]

Instances per second received, and committed before they are acknowledged, through
- C-STORE: dcmtk's `storescu` sending a folder of `--films` small films (512 x 512, 16-bit)
  over one association to `manage.py dicom_listen`, and the same to Orthanc's DICOM server;
- STOW-RS: one client posting them in batches of `--batch` to the portal's /dicomweb/studies
  (its own web server, `serve_web`) and to Orthanc's DICOMweb plugin (Debian package
  `orthanc-dicomweb`).
Each path alternates portal and Orthanc rounds, each into empty storage and an empty database
(SQLite, or a throwaway PostgreSQL database beside DATABASE_URL's), and reports the best round
of each: load from other jobs on a shared machine falls on both alike. Goal: portal/Orthanc
>= 1 for each path. A peer that cannot run here is skipped, saying why.
"""

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from ingest import database_name, fresh_database, generate  # noqa: E402

from portal.pacs.multipart import new_boundary, write_parts  # noqa: E402
from tests.peers import Orthanc, free_port, orthanc_binary  # noqa: E402

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
SETUP = """
from portal.ingest.services import site_create
from portal.pacs.services import site_ae_set
site = site_create(slug="bench")
site_ae_set(site=site, ae_title="BENCH", senders=["STORESCU"])
"""


def _wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited at start ({proc.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    sys.exit(f"{what} did not listen within 60 s")


@contextlib.contextmanager
def portal(data_dir: Path) -> Iterator[dict]:
    """A fresh portal: site `bench` (AE title BENCH, STORESCU may call it), an uploader with
    a token, the DICOM listener and the web server, each on a free port."""
    with fresh_database(data_dir) as env:
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run(
            [*manage, "shell", "-c", SETUP], env=env, cwd=ROOT, check=True, capture_output=True
        )
        subprocess.run(
            [*manage, "user_add", "pusher", "--role", "uploader", "--site", "bench"],
            env=env, cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        key = subprocess.run(
            [*manage, "token_create", "pusher"],
            env=env, cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout.split()[-1]  # fmt: skip
        dicom_port, web_port = free_port(), free_port()
        procs = [
            subprocess.Popen(
                [*manage, "dicom_listen", "--port", str(dicom_port)], env=env, cwd=ROOT
            ),
            subprocess.Popen(
                [*manage, "serve_web", "--port", str(web_port)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        try:
            _wait_port(dicom_port, procs[0], "dicom_listen")
            _wait_port(web_port, procs[1], "serve_web")
            yield {
                "dicom_port": dicom_port,
                "stow_url": f"http://127.0.0.1:{web_port}/dicomweb/studies",
                "headers": {"Authorization": f"Token {key}"},
            }
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)


def storescu(folder: Path, ae_title: str, port: int) -> float:
    """Seconds for storescu to send every file over one association, every one answered."""
    start = time.perf_counter()
    sent = subprocess.run(
        ["storescu", "-aet", "STORESCU", "-aec", ae_title, "+sd", "-nh", "127.0.0.1", str(port),
         str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if sent.returncode != 0 or "Failed" in sent.stderr:
        sys.exit(f"storescu to {ae_title} failed:\n{sent.stderr[-2000:]}")
    return seconds


def stow(folder: Path, url: str, headers: dict, batch: int) -> float:
    """Seconds for one client to post every file in batches of `batch`."""
    paths = sorted(folder.iterdir())
    session = requests.Session()
    start = time.perf_counter()
    for i in range(0, len(paths), batch):
        boundary = new_boundary()
        body = b"".join(
            write_parts((("application/dicom", [p.read_bytes()]) for p in paths[i : i + batch]),
                        boundary)
        )  # fmt: skip
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        answer = session.post(
            url, data=body, headers={**headers, "Content-Type": content_type}, timeout=600
        )
        if answer.status_code != 200:
            sys.exit(f"STOW-RS to {url} answered {answer.status_code}: {answer.text[:500]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{database_name()}; load average {load} on {os.cpu_count()} CPUs", flush=True)
    if shutil.which("storescu") is None:
        sys.exit("storescu is not installed (Debian package `dcmtk`)")
    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-push-", dir=ROOT / "var") as tmp:
        work = Path(tmp)
        films = work / "films"
        films.mkdir()
        size = generate(films, args.films, 512, seed=7)
        print(f"{args.films} films of 512 x 512, {size / 1e6:.0f} MB", flush=True)
        best: dict[str, float] = {}

        def keep(label: str, seconds: float) -> None:
            best[label] = min(best.get(label, float("inf")), seconds)
            print(f"  {label}: {args.films / seconds:.0f} instances/s", flush=True)

        why_not = "" if orthanc_binary() else "Orthanc is not installed (Debian package orthanc)"
        why_not_stow = why_not
        for n in range(args.rounds):
            print(f"round {n + 1}", flush=True)
            with portal(work / f"portal-c-{n}") as peer:
                keep("portal C-STORE", storescu(films, "BENCH", peer["dicom_port"]))
            with portal(work / f"portal-w-{n}") as peer:
                keep("portal STOW-RS", stow(films, peer["stow_url"], peer["headers"], args.batch))
            if why_not:
                continue
            server = Orthanc(work / f"orthanc-c-{n}", dicom=True)
            try:
                keep("Orthanc C-STORE", storescu(films, server.aet, server.dicom_port))
            finally:
                server.stop()
            if not DICOMWEB_PLUGIN.exists():
                why_not_stow = "its DICOMweb plugin is not installed (orthanc-dicomweb)"
                continue
            server = Orthanc(work / f"orthanc-w-{n}", plugins=[str(DICOMWEB_PLUGIN)])
            try:
                url = f"{server.url}/dicom-web/studies"
                keep("Orthanc STOW-RS", stow(films, url, {}, args.batch))
            finally:
                server.stop()
        print("best rounds (instances/s):")
        for label, seconds in best.items():
            print(f"  {label}: {args.films / seconds:.0f}")
        for path in ("C-STORE", "STOW-RS"):
            mine, theirs = best.get(f"portal {path}"), best.get(f"Orthanc {path}")
            if mine and theirs:
                print(f"{path} portal/orthanc = {theirs / mine:.2f} (goal >= 1)")
            else:
                reason = why_not or (why_not_stow if path == "STOW-RS" else "")
                print(f"{path} portal/orthanc: skipped: {reason}")


if __name__ == "__main__":
    main()
