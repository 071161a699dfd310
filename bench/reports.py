"""Validation-set benchmarks, side by side with a reference in the same run.

    python bench/reports.py [--files 200] [--size 1024] [--items 128000]

Report: the figures of a report over 128,000 items from 10 sites (every section, the MAE's
bootstrap interval with 1,000 resamples), its CSV and JSON, and its four plots, against the
goal of 3 s; the same metrics without the bootstrap are printed beside them for scale.

Export: `exports.export_write` of a frozen version (hashing, pixel hash, deflate, manifests)
against `zip -q -r` (Info-ZIP, default deflate) of the same stored files; prints MB/s of
stored bytes, the ratio (goal: at least 0.8) and the export's peak memory. The portal runs in
a child process with its own data folder and SQLite database, so the peak is the export's own.
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.dicom_files import make_dicom  # noqa: E402


def _portal_env(data_dir: Path) -> dict:
    env = dict(os.environ, PORTAL_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="portal.settings")
    env.pop("DATABASE_URL", None)
    return env


def _child(*args: str, data_dir: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args],
        env=_portal_env(data_dir),
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def seed_export_set(files: int, size: int) -> None:
    """A site with `files` stored 16-bit DICOM images and a frozen version holding them all
    (rows made directly: the export reads stored files, not how they came in)."""
    import django

    django.setup()
    from django.conf import settings

    from portal.ingest.models import Image, ReviewStatus, Upload
    from portal.ingest.services import site_create, upload_create
    from portal.validation.models import ValidationSet
    from portal.validation.services import version_record

    site = site_create(slug="bench")
    upload = upload_create(site=site, source=Upload.Source.CLI)
    rng = np.random.default_rng(size)
    base = rng.integers(0, 4096, size=(size, size), dtype=np.uint16)
    items = []
    for i in range(files):
        image = Image(
            site=site,
            upload=upload,
            size_bytes=0,
            sop_instance_uid=f"2.25.{i + 1}",
            study_instance_uid=f"2.25.{i + 1}1",
            series_instance_uid=f"2.25.{i + 1}2",
            patient_pseudonym=f"P{i}",
            sex="MF"[i % 2],
            age_days=100 + i,
            age_source="birthdate",
            modality="DX",
            rows=size,
            columns=size,
            photometric_interpretation="MONOCHROME2",
            bits_stored=12,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            status=ReviewStatus.CONFIRMED,
            curated_age_days=100 + i,
        )
        image.file = f"images/{site.slug}/{image.uuid}.dcm"
        path = settings.DATA_DIR / image.file
        # Distinct files without paying for fresh noise (as bench/ingest.py does).
        make_dicom(path, rows=size, cols=size, pixels=np.roll(base, i, axis=1), seed=i)
        data = path.read_bytes()
        image.size_bytes, image.sha256 = len(data), hashlib.sha256(data).hexdigest()
        image.save()
        items.append(
            {
                "image": image.pk,
                "site": site.slug,
                "sex": image.sex,
                "curated_age_days": image.curated_age_days,
                "sha256": image.sha256,
            }
        )
    validation_set = ValidationSet.objects.create(name="bench", definition={})
    validation_set.sites.set([site])
    version_record(validation_set=validation_set, items=items)
    print(json.dumps({"files": files}))


def run_export(out: Path) -> None:
    import django

    django.setup()
    from portal.validation.exports import export_write
    from portal.validation.models import ValidationSetVersion

    version = ValidationSetVersion.objects.get(validation_set__name="bench")
    start = time.perf_counter()
    summary = export_write(version=version, out=out)
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "size_bytes": summary["size_bytes"], "peak_mb": peak_mb}))


def run_zip(data_dir: Path, out: Path) -> float:
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(["zip", "-q", "-r", str(out), "images"], cwd=data_dir, check=True)  # noqa: S607
    return time.perf_counter() - start


def bench_export(*, work: Path, files: int, size: int, rounds: int = 2) -> dict:
    """Best of `rounds` for each side, alternating, on the same (cached) stored files."""
    data_dir = work / "data"
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0", "--skip-checks"],
        env=_portal_env(data_dir),
        check=True,
        cwd=ROOT,
    )
    _child("--seed-export", str(files), str(size), data_dir=data_dir)
    stored = sum(p.stat().st_size for p in (data_dir / "images").rglob("*.dcm"))
    zip_s, export_s, peak_mb, sizes = [], [], 0.0, {}
    for _ in range(rounds):
        zip_s.append(run_zip(data_dir, work / "reference.zip"))
        sizes["zip"] = (work / "reference.zip").stat().st_size
        result = _child("--export", str(work / "export.zip"), data_dir=data_dir)
        export_s.append(result["seconds"])
        peak_mb, sizes["export"] = max(peak_mb, result["peak_mb"]), result["size_bytes"]
    mb = stored / 1e6
    return {
        "files": files,
        "stored_mb": mb,
        "export_mb_s": mb / min(export_s),
        "zip_mb_s": mb / min(zip_s),
        "ratio": min(zip_s) / min(export_s),
        "export_zip_mb": sizes["export"] / 1e6,
        "reference_zip_mb": sizes["zip"] / 1e6,
        "peak_mb": peak_mb,
    }


def bench_report(*, items: int, sites: int = 10, resamples: int = 1000) -> dict:
    """The report's computing and rendering on synthetic items (loading them from the database
    is not included)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from inference_worker import metrics
    from inference_worker.ages import AGE_GROUPS, AGE_LIMIT_DAYS
    from portal.reports import render

    rng = np.random.default_rng(0)
    true = rng.integers(0, AGE_LIMIT_DAYS, items)
    predicted = np.clip(true + rng.normal(0, 180, items), 0, None).astype(int)
    sexes = rng.choice(["M", "F"], items).tolist()
    site = [f"site-{i:02d}" for i in rng.integers(0, sites, items)]
    timings = {}
    start = time.perf_counter()
    metrics.report(true, predicted, sexes, sites=site)
    timings["metrics without bootstrap"] = time.perf_counter() - start
    start = time.perf_counter()
    sections = metrics.report(true, predicted, sexes, sites=site, resamples=resamples, seed=0)
    timings["metrics with bootstrap"] = time.perf_counter() - start
    result = {
        "validation_set": {
            "name": "bench",
            "version": 1,
            "manifest_sha256": "0" * 64,
            "items": items,
        },
        "model": "bench",
        "model_sha256": "0" * 64,
        "compare_model": None,
        "compare_model_sha256": None,
        "age_groups": [list(g) for g in AGE_GROUPS],
        "bootstrap": {"resamples": resamples, "seed": 0, "confidence": 0.95},
        "created_at": "",
        **sections,
        "compare": None,
        "paired": None,
        "paper_table": None,
    }
    points = {
        "true_days": true.tolist(),
        "predicted_days": predicted.tolist(),
        "compare_predicted_days": None,
        "sex": sexes,
        "site": site,
    }
    start = time.perf_counter()
    render.to_csv(result)
    render.to_json(result)
    timings["CSV and JSON"] = time.perf_counter() - start
    start = time.perf_counter()
    render.plots(result, points)
    timings["plots"] = time.perf_counter() - start
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--items", type=int, default=128_000)
    parser.add_argument("--seed-export", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--export", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_export:
        seed_export_set(*args.seed_export)
        return
    if args.export:
        run_export(args.export)
        return

    timings = bench_report(items=args.items)
    report_s = sum(v for k, v in timings.items() if k != "metrics without bootstrap")
    print(
        f"report over {args.items:,} items, 10 sites: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
        + f"; report total {report_s:.2f} s (goal < 3 s)"
    )
    if shutil.which("zip") is None:
        sys.exit("bench/reports.py needs Info-ZIP's `zip` (Debian package `zip`) as the reference")
    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-reports-", dir=ROOT / "var") as tmp:
        r = bench_export(work=Path(tmp), files=args.files, size=args.size)
    print(
        f"export of {r['files']} files, {r['stored_mb']:.0f} MB stored: "
        f"{r['export_mb_s']:.1f} MB/s; zip -q -r: {r['zip_mb_s']:.1f} MB/s; "
        f"export/zip = {r['ratio']:.2f} (goal >= 0.8)"
    )
    print(
        f"ZIP sizes: export {r['export_zip_mb']:.0f} MB, zip {r['reference_zip_mb']:.0f} MB; "
        f"export peak memory {r['peak_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
