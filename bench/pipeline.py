"""Pipeline benchmark: images/s through Redis and the inference worker (the way the portal
predicts) against the same model called in-process on the same images, in one run; and the
inference worker's peak memory.

    python bench/pipeline.py [--images 96] [--batch 16] [--model var/models/demo]

Goal: the queue costs at most 15% (pipeline time / in-process time <= 1.15).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--model", type=Path, default=ROOT / "var" / "models" / "demo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-", dir=ROOT / "var") as tmp:
        run(Path(tmp), args)


def run(work: Path, args: argparse.Namespace) -> None:
    os.environ.update(
        PORTAL_DATA_DIR=str(work / "data"),
        DJANGO_SETTINGS_MODULE="portal.settings",
        PORTAL_PREDICT_BATCH_SIZE=str(args.batch),
    )
    os.environ.pop("DATABASE_URL", None)
    from portal.core.processes import local_redis

    with local_redis(work / "redis") as redis_url:
        os.environ["REDIS_URL"] = redis_url
        import django

        django.setup()
        from django.core.management import call_command

        from inference_worker import checkpoint
        from inference_worker.model import build_model
        from inference_worker.predict import load_predictor
        from inference_worker.synthetic import generate
        from portal.ingest.archive import Source
        from portal.ingest.models import Image, Upload
        from portal.ingest.services import site_create, upload_create, upload_process
        from portal.predictions import services
        from portal.predictions.models import PredictionJob

        call_command("migrate", verbosity=0)
        model_dir = args.model
        if not (model_dir / checkpoint.CARD).exists():
            model_dir = work / "model"
            checkpoint.save(
                model_dir,
                build_model("ca_resnet18", width=16).eval(),
                {
                    "name": "bench",
                    "architecture": "ca_resnet18",
                    "width": 16,
                    "input_size": 128,
                    "normalisation": {"age_mean_days": 3000.0, "age_std_days": 1500.0},
                },
            )
        phantoms = work / "phantoms"
        generate(phantoms, args.images, seed=31, profile="north", workers=os.cpu_count() or 1)
        (phantoms / "manifest.csv").unlink()
        site = site_create(slug="bench")
        upload = upload_process(
            upload=upload_create(site=site, source=Upload.Source.CLI),
            sources=[Source.given(phantoms)],
        )
        images = list(Image.objects.order_by("id"))
        data = work / "data"

        # In-process: load the model and predict the same images with heatmaps, same batches.
        start = time.perf_counter()
        predictor = load_predictor(str(model_dir))
        predictor.run(
            [str(data / i.file) for i in images],
            batch_size=args.batch,
            heatmap_paths=[str(work / "inproc" / f"{i.uuid}.png") for i in images],
        )
        in_process_s = time.perf_counter() - start

        env = dict(
            os.environ,
            INFERENCE_DATA_DIR=str(data),
            INFERENCE_THREADS=str(os.cpu_count()),
            PYTHONUNBUFFERED="1",
        )
        celery = str(Path(sys.executable).parent / "celery")

        def start_worker(app: str, queue: str, *options: str) -> subprocess.Popen:
            log = (work / f"{queue}.log").open("wb")
            command = [
                celery,
                "-A",
                app,
                "worker",
                "-Q",
                queue,
                "-n",
                f"{queue}@%h",
                "--loglevel",
                "INFO",
                *options,
            ]
            return subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )

        default = start_worker("portal", "default", "--pool", "threads")
        inference = start_worker("inference_worker", "inference", "--concurrency", "1")
        try:
            for log in (work / "default.log", work / "inference.log"):
                while "ready." not in log.read_text(errors="replace"):
                    time.sleep(0.2)
            version = services.model_version_register(folder=model_dir, activate=True)
            peak = [0]
            stop = threading.Event()

            def watch() -> None:
                proc = psutil.Process(inference.pid)
                while not stop.is_set():
                    try:
                        rss = sum(p.memory_info().rss for p in [proc, *proc.children(True)])
                        peak[0] = max(peak[0], rss)
                    except psutil.NoSuchProcess:
                        pass
                    time.sleep(0.05)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            start = time.perf_counter()
            job = services.prediction_job_create(upload=upload, model_version=version)
            while PredictionJob.objects.get(pk=job.pk).finished_at is None:
                time.sleep(0.05)
            pipeline_s = time.perf_counter() - start
            stop.set()
            job.refresh_from_db()
        finally:
            for proc in (default, inference):
                proc.terminate()
                proc.wait(timeout=30)
        n = len(images)
        print(f"{n} images, batch {args.batch}, model {version.name}, {job.done_count} predicted")
        print(
            f"in-process: {n / in_process_s:.1f} images/s ({in_process_s:.1f} s, model load "
            f"included)"
        )
        print(f"through Redis and the worker: {n / pipeline_s:.1f} images/s ({pipeline_s:.1f} s)")
        print(f"pipeline / in-process time = {pipeline_s / in_process_s:.2f} (goal: at most 1.15)")
        print(f"inference worker peak memory: {peak[0] / 2**20:.0f} MB (main process and pool)")


if __name__ == "__main__":
    main()
