"""Pipeline benchmark, in one run on the same images:
1. the predict pipeline in-process, side by side: sequential (decode, predict, write in turn)
   against pipelined (decoders running ahead, as threads like the Celery worker and as processes
   like the CLI; heatmaps written behind), images/s and each stage's median ms per image;
2. images/s through Redis and the inference worker (the way the portal predicts) against the same
   model called in-process; and the inference worker's peak memory.

    python bench/pipeline.py [--images 96] [--batch 16] [--workers 2] [--model var/models/demo]
        [--skip-queue]

Goals: pipelined at least as fast as sequential; the queue costs at most 15% (pipeline time /
in-process time <= 1.15).
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
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--skip-queue", action="store_true", help="only the side-by-side run")
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
        compare_pipelines(model_dir, [str(data / i.file) for i in images], work, args)
        if args.skip_queue:
            return

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


def compare_pipelines(model_dir: Path, files: list[str], work: Path, args) -> None:
    """Sequential and pipelined prediction of the same files with heatmaps, side by side; the
    model is loaded (and warmed on one batch) before the clock starts."""
    import statistics

    from inference_worker.predict import STAGES, Settings, load_predictor

    predictor = load_predictor(str(model_dir))
    predictor.run(files[: args.batch], batch_size=args.batch)
    modes = {
        "sequential": Settings(gpu_batch=args.batch),
        "pipelined, threads": Settings(gpu_batch=args.batch, decode_workers=args.workers),
        "pipelined, processes": Settings(
            gpu_batch=args.batch, decode_workers=args.workers, processes=True
        ),
    }
    print(f"{len(files)} images, batch {args.batch}, {args.workers} decoders, {predictor.device}")
    print(f"{'mode':<22}{'images/s':>10}  " + "".join(f"{s:>11}" for s in STAGES) + "  (ms/img)")
    rates = {}
    for name, settings in modes.items():
        heat = work / "side-by-side" / name.replace(" ", "").replace(",", "-")
        paths = [str(heat / f"{k}.png") for k in range(len(files))]
        start = time.perf_counter()
        results = predictor.run(files, heatmap_paths=paths, settings=settings)
        rates[name] = len(files) / (time.perf_counter() - start)
        ms = [statistics.median(r.ms[s] for r in results if not r.error) for s in STAGES]
        print(f"{name:<22}{rates[name]:>10.1f}  " + "".join(f"{m:>11.3f}" for m in ms))
    for name in list(modes)[1:]:
        print(f"{name} / sequential throughput = {rates[name] / rates['sequential']:.2f}")


if __name__ == "__main__":
    main()
