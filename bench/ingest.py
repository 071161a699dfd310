"""Ingest benchmark, every number from one run on this machine:

    python bench/ingest.py [--small 1500] [--films 40] [--large 0] [--rounds 3]

- small files (512 x 512, 16-bit): `manage.py ingest`'s service against Orthanc storing the
  same files through its REST API with 5 clients (Debian package `orthanc`; skipped, saying
  why, where it cannot run), in `--rounds` alternating rounds (ingest, Orthanc, ingest, ...),
  each into empty storage, so that load from other jobs on a shared machine falls on both
  alike; the ratio is of the best round of each. Goal: ingest/orthanc >= 1.
- the pydicom-data chest CR (1841 x 1955) as JPEG 2000 lossless (RG1_J2KR) and lossy
  (RG1_J2KI) against an uncompressed copy of the same film. Goal: compressed/uncompressed
  >= 0.5.
- peak memory of the ingest process and its workers, for all the small files and a fifth of
  them: it must not grow with the number of files.

Ingest runs in a child process (SQLite in a data folder of its own), so its peak is its own.
Its fork server (which imports pydicom once for the worker processes) is started before the
clock, as Orthanc is started before its clock: in a Celery worker it outlives every upload.
"""

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pydicom

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.dicom_files import make_dicom  # noqa: E402


def generate(folder: Path, count: int, size: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 4096, size=(size, size), dtype=np.uint16)
    for i in range(count):
        pixels = np.roll(base, i, axis=None)  # distinct films without paying for fresh noise
        make_dicom(folder / f"{i:05d}.dcm", rows=size, cols=size, pixels=pixels, seed=i)
    return sum(p.stat().st_size for p in folder.iterdir())


def plain_copy(folder: Path, out: Path) -> float:
    out.mkdir()
    start = time.perf_counter()
    for path in sorted(folder.iterdir()):
        shutil.copyfile(path, out / path.name)
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    return elapsed


def ingest_in_child(folder: Path, data_dir: Path) -> dict:
    """Run the ingest service in a fresh process (SQLite in its own data folder)."""
    env = dict(os.environ, PORTAL_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="portal.settings")
    env.pop("DATABASE_URL", None)
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, check=True, cwd=ROOT
    )
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(folder)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    shutil.rmtree(data_dir, ignore_errors=True)  # what it stored is not needed again
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(folder: Path) -> None:
    import django

    django.setup()
    from portal.ingest.archive import Source
    from portal.ingest.models import Upload
    from portal.ingest.services import (
        ingest_workers_start,
        site_create,
        upload_create,
        upload_process,
    )

    upload = upload_create(site=site_create(slug="bench"), source=Upload.Source.CLI)
    # Started before the clock, as Orthanc is: a Celery worker's fork server outlives uploads.
    ingest_workers_start()
    # The largest of the worker processes that read and de-identify (0 when run inline):
    # they are forked from a fork server, so they are sampled rather than waited for.
    worker_peak, done = [0], threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not done.wait(0.1):
            for proc in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    worker_peak[0] = max(worker_peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    upload = upload_process(upload=upload, sources=[Source.given(folder)])
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_mb = worker_peak[0] / 1024**2
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "accepted": upload.accepted_count,
                "peak_mb": peak_mb,
                "worker_peak_mb": worker_mb,
            }
        )
    )


def films(folder: Path, count: int, name: str) -> int:
    """`count` copies of a pydicom-data chest film relabelled as a child's, each a film of its
    own for the duplicate check: the uncompressed copies differ in one pixel, the JPEG 2000
    copies in a comment marker segment (COM) of the codestream, so the pixels decode alike."""
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    source = pydicom.dcmread(get_testdata_file("RG1_J2KR.dcm" if name == "UNC" else name))
    if name == "UNC":
        pixels = source.pixel_array.copy()
        source.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    else:
        frame = next(generate_frames(source.PixelData, number_of_frames=1))
    folder.mkdir()
    for i in range(count):
        ds = source.copy()
        ds.PatientBirthDate = "20150310"
        ds.StudyDate = "20200115"
        ds.SOPInstanceUID = generate_uid()
        if name == "UNC":
            pixels[0, 0] = i
            ds.PixelData = pixels.tobytes()
        else:
            comment = b"\x00\x01" + f"copy {i:06d}".encode()  # Rcom 1: Latin text
            com = b"\xff\x64" + (len(comment) + 2).to_bytes(2, "big") + comment
            siz_end = 4 + int.from_bytes(frame[4:6], "big")  # SOC, SIZ marker, Lsiz
            ds.PixelData = encapsulate([frame[:siz_end] + com + frame[siz_end:]])
        ds.save_as(folder / f"{i:05d}.dcm", enforce_file_format=True)
    return sum(p.stat().st_size for p in folder.iterdir())


def orthanc(folder: Path, work: Path, clients: int = 5) -> tuple[float | None, str]:
    """Seconds for Orthanc to store every file of `folder` over REST with `clients` clients,
    or None and why it did not run."""
    binary = shutil.which("Orthanc")
    if not binary:
        return None, "not installed (Debian package `orthanc`)"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    work.mkdir(parents=True, exist_ok=True)
    config = work / "orthanc.json"
    config.write_text(
        json.dumps(
            {
                "StorageDirectory": str(work / "orthanc-db"),
                "HttpPort": port,
                "DicomServerEnabled": False,
                "RemoteAccessAllowed": False,
                "AuthenticationEnabled": False,
                "Plugins": [],
            }
        )
    )
    proc = subprocess.Popen(
        [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"

    def store(path: Path) -> None:
        request = urllib.request.Request(f"{url}/instances", data=path.read_bytes(), method="POST")
        urllib.request.urlopen(request, timeout=60).read()

    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/system", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    return None, f"Orthanc exited at start (status {proc.returncode})"
                time.sleep(0.1)
        else:
            return None, "Orthanc did not answer within 10 s"
        paths = sorted(folder.iterdir())
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(store, paths))
        return time.perf_counter() - start, f"{clients} REST clients"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work / "orthanc-db", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1500)
    parser.add_argument("--films", type=int, default=40, help="copies of each chest film")
    parser.add_argument("--large", type=int, default=0, help="2048 x 2048 files (0: none)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating ingest and Orthanc rounds (small files)"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=ROOT / "var") as tmp:
        work = Path(tmp)
        rows, peaks = [], {}

        def run(label: str, folder: Path, count: int, total: int) -> dict:
            copy_s = plain_copy(folder, work / "copy")
            result = ingest_in_child(folder, work / f"data-{folder.name}")
            assert result["accepted"] == count, result
            rows.append((label, count, total, result["seconds"], copy_s))
            peaks[label] = (result["peak_mb"], result["worker_peak_mb"])
            return result

        small = work / "small"
        small.mkdir()
        small_bytes = generate(small, args.small, 512, seed=512)
        small_result = run("small 512x512", small, args.small, small_bytes)
        small_row = len(rows) - 1
        ingest_rounds, orthanc_rounds = [small_result["seconds"]], []
        for n in range(args.rounds):
            orthanc_s, orthanc_how = orthanc(small, work / f"orthanc-{n}")
            if orthanc_s is None:
                break
            orthanc_rounds.append(orthanc_s)
            if n + 1 < args.rounds:
                more = ingest_in_child(small, work / f"data-small-{n + 1}")
                ingest_rounds.append(more["seconds"])
        label, count, total, _seconds, copy_s = rows[small_row]
        rows[small_row] = (label, count, total, min(ingest_rounds), copy_s)  # the best round
        fifth = work / "fifth"
        fifth.mkdir()
        for path in sorted(small.iterdir())[: args.small // 5]:
            shutil.copyfile(path, fifth / path.name)
        fifth_result = ingest_in_child(fifth, work / "data-fifth")
        peaks[f"small, {args.small // 5} files"] = (
            fifth_result["peak_mb"],
            fifth_result["worker_peak_mb"],
        )
        film_rates = {}
        for name in ("UNC", "RG1_J2KR.dcm", "RG1_J2KI.dcm"):
            folder = work / f"film-{name.split('.')[0]}"
            total = films(folder, args.films, name)
            result = run(f"chest CR {name.split('.')[0]}", folder, args.films, total)
            film_rates[name] = args.films / result["seconds"]
        if args.large:
            large = work / "large"
            large.mkdir()
            run("large 2048x2048", large, args.large, generate(large, args.large, 2048, seed=2048))

        print(
            f"{'set':<20}{'files':>7}{'MB':>9}{'ingest files/s':>16}{'ingest MB/s':>13}"
            f"{'copy MB/s':>11}{'ingest/copy':>13}"
        )
        for label, count, total, seconds, copy_s in rows:
            mb = total / 1e6
            print(
                f"{label:<20}{count:>7}{mb:>9.0f}{count / seconds:>16.1f}{mb / seconds:>13.1f}"
                f"{mb / copy_s:>11.1f}{copy_s / seconds:>13.2f}"
            )
        if not orthanc_rounds:
            print(f"orthanc: skipped: {orthanc_how}")
        else:
            rounds = ", ".join(
                f"{args.small / i:.1f} / {args.small / o:.1f}"
                for i, o in zip(ingest_rounds, orthanc_rounds, strict=False)
            )
            best_ingest, best_orthanc = min(ingest_rounds), min(orthanc_rounds)
            print(f"small files/s by round, ingest / orthanc: {rounds}")
            print(
                f"orthanc ({orthanc_how}), small files, best round: "
                f"{args.small / best_orthanc:.1f} files/s; ingest best round: "
                f"{args.small / best_ingest:.1f} files/s; "
                f"ingest/orthanc = {best_orthanc / best_ingest:.2f}"
            )
        unc = film_rates["UNC"]
        for name in ("RG1_J2KR.dcm", "RG1_J2KI.dcm"):
            print(f"chest CR {name.split('.')[0]}/uncompressed = {film_rates[name] / unc:.2f}")
        for label, (main_mb, worker_mb) in peaks.items():
            print(f"peak memory, {label}: {main_mb:.0f} MB main, {worker_mb:.0f} MB per worker")
        print(
            "goals: small ingest/orthanc >= 1; chest CR JPEG 2000/uncompressed >= 0.5; "
            "peak memory independent of the number of files"
        )


if __name__ == "__main__":
    main()
