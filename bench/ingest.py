"""Ingest benchmark: the ingest service against a plain copy of the same bytes, in one run.

    python bench/ingest.py [--large 200] [--small 1000] [--keep DIR]

Prints files/s, MB/s, the ratio to `shutil.copyfile` of the same files, and each run's peak
memory (ingest runs in a child process so its peak is its own). Where Debian's `orthanc` is
installed, also times Orthanc storing the small files over its REST API, as the reference.
"""

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.dicom_files import make_dicom  # noqa: E402


def generate(folder: Path, count: int, size: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 4096, size=(size, size), dtype=np.uint16)
    for i in range(count):
        pixels = np.roll(base, i, axis=1)  # distinct files without paying for fresh noise
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
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(folder: Path) -> None:
    import django

    django.setup()
    from portal.ingest.archive import Source
    from portal.ingest.models import Upload
    from portal.ingest.services import site_create, upload_create, upload_process

    upload = upload_create(site=site_create(slug="bench"), source=Upload.Source.CLI)
    start = time.perf_counter()
    upload = upload_process(upload=upload, sources=[Source.given(folder)])
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The largest of the worker processes that read and de-identify (0 when run inline).
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
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


def orthanc(folder: Path, work: Path) -> float | None:
    binary = shutil.which("Orthanc")
    if not binary:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
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
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/system", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.1)
        start = time.perf_counter()
        for path in sorted(folder.iterdir()):
            request = urllib.request.Request(
                f"{url}/instances", data=path.read_bytes(), method="POST"
            )
            urllib.request.urlopen(request, timeout=30).read()  # noqa: S310
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=ROOT / "var") as tmp:
        work = Path(tmp)
        rows = []
        peaks = {}
        for label, count, size in (
            ("large 2048x2048", args.large, 2048),
            ("small 512x512", args.small, 512),
        ):
            folder = work / f"in-{size}"
            folder.mkdir()
            total = generate(folder, count, size, seed=size)
            copy_s = plain_copy(folder, work / "copy")
            result = ingest_in_child(folder, work / f"data-{size}")
            assert result["accepted"] == count, result
            rows.append((label, count, total, result["seconds"], copy_s))
            peaks[label] = (result["peak_mb"], result["worker_peak_mb"])
            if size == 512:
                orthanc_s = orthanc(folder, work)
                # Peak memory against the number of files: a fifth of the small files.
                fifth = work / "fifth"
                fifth.mkdir()
                for path in sorted(folder.iterdir())[: count // 5]:
                    shutil.copyfile(path, fifth / path.name)
                fifth_result = ingest_in_child(fifth, work / "data-fifth")
                peaks[f"small, {count // 5} files"] = (
                    fifth_result["peak_mb"],
                    fifth_result["worker_peak_mb"],
                )

        print(
            f"{'set':<18}{'files':>7}{'MB':>9}{'ingest files/s':>16}{'ingest MB/s':>13}"
            f"{'copy MB/s':>11}{'ingest/copy':>13}"
        )
        for label, count, total, seconds, copy_s in rows:
            mb = total / 1e6
            print(
                f"{label:<18}{count:>7}{mb:>9.0f}{count / seconds:>16.1f}{mb / seconds:>13.1f}"
                f"{mb / copy_s:>11.1f}{copy_s / seconds:>13.2f}"
            )
        small = rows[1]
        if orthanc_s is None:
            print("orthanc: not installed (Debian package `orthanc`), reference skipped")
        else:
            print(
                f"orthanc REST, small files: {small[1] / orthanc_s:.1f} files/s; "
                f"ingest/orthanc = {orthanc_s / small[3]:.2f}"
            )
        for label, (main_mb, worker_mb) in peaks.items():
            print(f"peak memory, {label}: {main_mb:.0f} MB main, {worker_mb:.0f} MB per worker")
        print(
            "goals: large ingest/copy >= 0.5; small ingest/orthanc >= 1; peak independent of count"
        )


if __name__ == "__main__":
    main()
