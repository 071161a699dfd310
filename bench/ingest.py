"""Ingest benchmark, every number from one run on this machine:

    python bench/ingest.py [--small 1000] [--films 40] [--large 0] [--rounds 3]

- small files (512 x 512, 16-bit): `manage.py ingest FOLDER --site bench --create-site`, the
  command as an operator runs it (a fresh process: imports, Django, its worker processes, the
  progress bar on stderr), timed by the wall clock from start to exit, against Orthanc storing
  the same files through its REST API with 5 clients (Debian package `orthanc`, started before
  its clock as a server is; skipped, saying why, where it cannot run), in `--rounds`
  alternating rounds (ingest, Orthanc, ingest, ...), each into empty storage and an empty
  database, so that load from other jobs on a shared machine falls on both alike; the ratio
  is of the best round of each. Goal: ingest/orthanc >= 1.
- the pydicom-data chest CR (1841 x 1955) as JPEG 2000 lossless (RG1_J2KR) and lossy
  (RG1_J2KI) against an uncompressed copy of the same film, by the ingest service's rate
  (its fork server started before the clock, as in a Celery worker, where it outlives every
  upload), so that the ratio is of the files' cost alone. Goal: compressed/uncompressed >= 0.5.
- peak memory of the command and its worker processes, for all the small files and a fifth of
  them: it must not grow with the number of files.

The database is the one configured: SQLite in a data folder of the run's own, or, with
DATABASE_URL set, a throwaway PostgreSQL database beside the one it names (`<name>_bench`,
created empty for each ingest and dropped after it).
"""

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psutil
import pydicom

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import review_api  # noqa: E402  (bench/ is not a package: its throwaway database is reused)

from tests.dicom_files import make_dicom  # noqa: E402
from tests.peers import Orthanc, orthanc_binary  # noqa: E402


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


@contextlib.contextmanager
def fresh_database(data_dir: Path) -> Iterator[dict[str, str]]:
    """The environment of an ingest into empty storage and an empty, migrated database of the
    configured kind (see the module's docstring); both go afterwards."""
    env = dict(os.environ, PORTAL_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="portal.settings")
    env.pop("DATABASE_URL", None)
    env.setdefault("PORTAL_LOG_LEVEL", "WARNING")
    url = os.environ.get("DATABASE_URL")
    throwaway = contextlib.nullcontext()
    if url:
        parts = urlsplit(url)
        name = parts.path.lstrip("/") or "postgres"
        env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}_bench"))
        throwaway = review_api.throwaway_database(env["DATABASE_URL"])
    try:
        with throwaway:
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0", "--skip-checks"],
                env=env,
                check=True,
                cwd=ROOT,
            )
            yield env
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # what it stored is not needed again


def database_name() -> str:
    url = os.environ.get("DATABASE_URL")
    return f"PostgreSQL ({urlsplit(url).hostname})" if url else "SQLite"


def ingest_command(folder: Path, data_dir: Path) -> dict:
    """`manage.py ingest FOLDER` as an operator runs it, timed from start to exit, with the
    peak memory of its process and of its worker processes (sampled)."""
    with fresh_database(data_dir) as env:
        command = [sys.executable, str(ROOT / "manage.py"), "ingest", str(folder)]
        command += ["--site", "bench", "--create-site"]
        peaks = {"main": 0, "worker": 0}
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        done = threading.Event()

        def sample() -> None:
            with contextlib.suppress(psutil.Error):
                me = psutil.Process(proc.pid)
                while not done.wait(0.05):
                    peaks["main"] = max(peaks["main"], me.memory_info().rss)
                    for worker in me.children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            peaks["worker"] = max(peaks["worker"], worker.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, err = proc.communicate()
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
    if proc.returncode not in (0, 1):
        sys.exit(f"manage.py ingest failed ({proc.returncode}):\n{err[-2000:]}")
    accepted = re.search(r"(\d+) accepted", out)
    return {
        "seconds": seconds,
        "accepted": int(accepted.group(1)) if accepted else 0,
        "peak_mb": peaks["main"] / 1024**2,
        "worker_peak_mb": peaks["worker"] / 1024**2,
    }


def ingest_service(folder: Path, data_dir: Path) -> dict:
    """The ingest service alone (`child`), in a fresh process on a fresh database."""
    with fresh_database(data_dir) as env:
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
    copies in the length of a comment marker segment (COM) of the codestream, so the pixels
    decode alike (ingest blanks a comment's text, not its length)."""
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
            comment = b"\x00\x01" + b"copy" + b"." * i  # Rcom 1: Latin text
            com = b"\xff\x64" + (len(comment) + 2).to_bytes(2, "big") + comment
            siz_end = 4 + int.from_bytes(frame[4:6], "big")  # SOC, SIZ marker, Lsiz
            ds.PixelData = encapsulate([frame[:siz_end] + com + frame[siz_end:]])
        ds.save_as(folder / f"{i:05d}.dcm", enforce_file_format=True)
    return sum(p.stat().st_size for p in folder.iterdir())


def orthanc(folder: Path, work: Path, clients: int = 5) -> tuple[float | None, str]:
    """Seconds for Orthanc to store every file of `folder` over REST with `clients` clients,
    or None and why it did not run."""
    if orthanc_binary() is None:
        return None, "not installed (Debian package `orthanc`)"
    try:
        server = Orthanc(work)
    except RuntimeError as exc:
        return None, str(exc)
    try:
        paths = sorted(folder.iterdir())
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(server.store, paths))
        return time.perf_counter() - start, f"{clients} REST clients"
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
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

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{database_name()}; load average {load} on {os.cpu_count()} CPUs", flush=True)
    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=ROOT / "var") as tmp:
        work = Path(tmp)
        rows, peaks = [], {}

        def service(label: str, folder: Path, count: int, total: int) -> dict:
            copy_s = plain_copy(folder, work / "copy")
            result = ingest_service(folder, work / f"data-{folder.name}")
            assert result["accepted"] == count, result
            rows.append((label, count, total, result["seconds"], copy_s))
            return result

        def command(folder: Path, count: int, round_: int) -> float:
            result = ingest_command(folder, work / f"data-{folder.name}-{round_}")
            assert result["accepted"] == count, result
            label = f"small, {count} files"
            main_mb, worker_mb = peaks.get(label, (0, 0))
            peaks[label] = (
                max(main_mb, result["peak_mb"]),
                max(worker_mb, result["worker_peak_mb"]),
            )
            return result["seconds"]

        small = work / "small"
        small.mkdir()
        small_bytes = generate(small, args.small, 512, seed=512)
        copy_s = plain_copy(small, work / "copy")
        ingest_rounds, orthanc_rounds, orthanc_how = [], [], ""
        for n in range(max(1, args.rounds)):
            ingest_rounds.append(command(small, args.small, n))
            orthanc_s, orthanc_how = orthanc(small, work / f"orthanc-{n}")
            if orthanc_s is None:
                break  # without Orthanc one round of ingest is enough
            orthanc_rounds.append(orthanc_s)
        rows.append(("small 512x512 (cmd)", args.small, small_bytes, min(ingest_rounds), copy_s))
        fifth = work / "fifth"
        fifth.mkdir()
        for path in sorted(small.iterdir())[: args.small // 5]:
            shutil.copyfile(path, fifth / path.name)
        command(fifth, args.small // 5, 0)
        film_rates = {}
        for name in ("UNC", "RG1_J2KR.dcm", "RG1_J2KI.dcm"):
            folder = work / f"film-{name.split('.')[0]}"
            total = films(folder, args.films, name)
            result = service(f"chest CR {name.split('.')[0]}", folder, args.films, total)
            film_rates[name] = args.films / result["seconds"]
        if args.large:
            large = work / "large"
            large.mkdir()
            total = generate(large, args.large, 2048, seed=2048)
            service("large 2048x2048", large, args.large, total)

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
        print("(cmd: `manage.py ingest` start to exit; the others: the ingest service's rate)")
        if not orthanc_rounds:
            print(f"orthanc: skipped: {orthanc_how}")
        else:
            rounds = ", ".join(
                f"{args.small / i:.1f} / {args.small / o:.1f} ({o / i:.2f})"
                for i, o in zip(ingest_rounds, orthanc_rounds, strict=False)
            )
            best_ingest, best_orthanc = min(ingest_rounds), min(orthanc_rounds)
            print(f"small files/s by round, manage.py ingest / orthanc (ratio): {rounds}")
            print(
                f"orthanc ({orthanc_how}), {args.small} small files, best round: "
                f"{args.small / best_orthanc:.1f} files/s; manage.py ingest best round: "
                f"{args.small / best_ingest:.1f} files/s; "
                f"ingest/orthanc = {best_orthanc / best_ingest:.2f}"
            )
            # Each round's pair ran back to back: their ratios' median is less at the mercy
            # of one round that a passing load slowed on one side.
            paired = statistics.median(
                o / i for i, o in zip(ingest_rounds, orthanc_rounds, strict=False)
            )
            print(f"median of the rounds' ratios: {paired:.2f}")
        unc = film_rates["UNC"]
        for name in ("RG1_J2KR.dcm", "RG1_J2KI.dcm"):
            print(f"chest CR {name.split('.')[0]}/uncompressed = {film_rates[name] / unc:.2f}")
        for label, (main_mb, worker_mb) in peaks.items():
            print(f"peak memory, {label}: {main_mb:.0f} MB main, {worker_mb:.0f} MB per worker")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average at the end: {load}")
        print(
            "goals: small ingest/orthanc >= 1; chest CR JPEG 2000/uncompressed >= 0.5; "
            "peak memory independent of the number of files"
        )


if __name__ == "__main__":
    main()
