"""Run the whole portal on one machine: Redis (unless REDIS_URL is set), a Celery worker for
the `default` queue, Celery beat (the periodic tasks of CELERY_BEAT_SCHEDULE), one inference
worker, the web server, and (first run) the demo model's training, which is registered and put
to work when it ends; Ctrl-C stops them all."""

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from inference_worker import progress
from portal.celery import app as celery_app
from portal.core.files import data_folder
from portal.core.processes import beat_command, local_redis, stop_process_groups
from portal.ingest.models import Image, Site
from portal.ingest.services import upload_resend
from portal.learning.services import training_job_resend
from portal.predictions import services
from portal.predictions.dispatch import prediction_jobs_sweep
from portal.predictions.uploads import upload_jobs_recover
from portal.reports.services import report_resend
from portal.validation.exports import export_resend

DEMO_VERSION = "demo-ca-resnet18-phantoms"


class Command(BaseCommand):
    help = (
        "Start Redis, the Celery worker(s), Celery beat, the DICOM receiver and the web server "
        "together."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--port", type=int, default=settings.PORTAL_PORT, help="default: PORTAL_PORT or 8000"
        )
        parser.add_argument(
            "--web-threads",
            type=int,
            default=settings.PORTAL_WEB_THREADS,
            help="default: PORTAL_WEB_THREADS or 8",
        )
        parser.add_argument(
            "--skip-demo-model", action="store_true", help="do not train the demo model"
        )

    def handle(
        self, *args, host: str, port: int, web_threads: int, skip_demo_model: bool, **options
    ) -> None:
        with ExitStack() as stack:
            if not skip_demo_model:
                self._demo_model_starting()  # the banner shows from the first page on
            env = dict(os.environ, INFERENCE_DATA_DIR=str(settings.DATA_DIR))
            if "REDIS_URL" not in os.environ:
                env["REDIS_URL"] = stack.enter_context(
                    local_redis(settings.DATA_DIR / "redis", persist=True)
                )
                # This process queues prediction jobs too.
                celery_app.conf.broker_url = env["REDIS_URL"]
                self.stdout.write(
                    f"Redis: {env['REDIS_URL']} (local, data in {settings.DATA_DIR / 'redis'})"
                )
            bin_dir = os.path.dirname(sys.executable)
            commands = {
                "worker": [
                    os.path.join(bin_dir, "celery"),
                    "-A",
                    "portal",
                    "worker",
                    "-Q",
                    "default",
                    "-n",
                    "default@%h",
                    "--loglevel",
                    "INFO",
                    # Threads: default-queue tasks wait on the database and disk; ingest runs
                    # its CPU-heavy part in a process pool of its own.
                    "--pool",
                    "threads",
                    "--concurrency",
                    "4",
                ],
                # Periodic tasks (the stalled-jobs sweep); its schedule state stays in the
                # data folder, which GPU workers never mount whole.
                "beat": beat_command(bin_dir=bin_dir, data_dir=settings.DATA_DIR),
                "inference": [
                    os.path.join(bin_dir, "celery"),
                    "-A",
                    "inference_worker",
                    "worker",
                    "-Q",
                    "inference",
                    "-n",
                    "inference@%h",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "1",
                ],
                # The DICOM receiver (portal.pacs): sites' PACS send to their AE titles.
                "dicom": [
                    sys.executable,
                    str(settings.BASE_DIR / "manage.py"),
                    "dicom_listen",
                    "--host",
                    host,
                    "--port",
                    str(settings.DICOM["PORT"]),
                ],
                # waitress (portal.core.webserver): stalled uploads never hold a thread.
                "web": [
                    sys.executable,
                    str(settings.BASE_DIR / "manage.py"),
                    "serve_web",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--threads",
                    str(web_threads),
                ],
            }
            procs: dict[str, subprocess.Popen] = {}
            stack.callback(self._stop, procs)  # whatever started is stopped, even on a failure
            for name, cmd in commands.items():
                # A group of its own: Ctrl-C reaches this process, which stops each child
                # and everything the child started (see stop_process_groups).
                procs[name] = subprocess.Popen(cmd, env=env, process_group=0)
            self._resend_waiting_work()
            trainer = None if skip_demo_model else self._train_demo_model(env)
            if trainer:
                stack.callback(self._stop, {"demo": trainer})
            self.stdout.write(f"Portal: http://{host}:{port}/  (Ctrl-C stops everything)")
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            # Ctrl-C (SIGINT) stops everything however this was started: a shell script's
            # background job, for one, starts with SIGINT ignored, and Python then keeps it so.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                while all(p.poll() is None for p in procs.values()):
                    if trainer is not None and trainer.poll() is not None:
                        self._use_demo_model(trainer.returncode)
                        trainer = None
                    time.sleep(0.5)
                failed = [n for n, p in procs.items() if p.poll() is not None]
                self.stderr.write(f"{', '.join(failed)} stopped; shutting down the rest")
            except KeyboardInterrupt:
                self.stdout.write("Stopping…")

    def _resend_waiting_work(self) -> None:
        """Work recorded while the portal or its broker was down starts now: every upload,
        export, report and training job still waiting for its task is sent again, stalled
        prediction jobs are re-dispatched, and done uploads whose job was never made get it
        (docs/reliability.md, "When the broker is down"). The tasks do nothing twice, whatever
        the queues still held."""
        now = timezone.now()
        uploads = upload_resend(sent_before=now)
        built = export_resend(sent_before=now)
        reports = report_resend(sent_before=now)
        trainings = training_job_resend(sent_before=now)
        jobs = prediction_jobs_sweep(now=now)
        made = upload_jobs_recover(finished_before=now)
        self.stdout.write(
            f"Waiting work sent again: {uploads} uploads, {built} exports, {reports} reports, "
            f"{trainings} training jobs, "
            f"{sum(o == 'redispatched' for o in jobs.values())} prediction jobs; "
            f"{made} done uploads given their missing prediction job"
        )

    @staticmethod
    def _demo_model_starting() -> None:
        """Record "starting" (with the recipe's estimate) before anything else starts, unless
        the demo model is trained already."""
        out = data_folder("models/demo")
        if (progress.read(out) or {}).get("state") != progress.DONE:
            progress.demo_starting(out)

    def _train_demo_model(self, env: dict) -> subprocess.Popen:
        """Train (or reuse) the demo model in the background; the portal shows its progress."""
        out = data_folder("models/demo")
        log = out / "training.log"
        self.stdout.write(f"Demo model: checking or training in {out} (log: {log})")
        with log.open("ab") as fh:
            return subprocess.Popen(
                [sys.executable, "-m", "inference_worker.demo", "--out", str(out)],
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def _use_demo_model(self, returncode: int) -> None:
        """Register the trained demo model, make it active unless another version is, and
        queue every image that lacks its prediction."""
        if returncode != 0:
            progress.write(
                data_folder("models/demo"), state=progress.FAILED, exit_status=returncode
            )
            self.stderr.write(
                f"Demo model: not ready (exit status {returncode}); see its training.log"
            )
            return
        try:
            version = services.model_version_register(
                folder=settings.DATA_DIR / "models" / "demo",
                name=DEMO_VERSION,
                activate=services.active_model_version() is None,
            )
            unpredicted = Image.objects.exclude(predictions__model_version=version)
            for site in Site.objects.filter(pk__in=unpredicted.values("site")):
                job = services.prediction_job_create(site=site, model_version=version)
                self.stdout.write(
                    f"Demo model: job {job.pk} predicts {job.total} images of {site.slug}"
                )
        except services.PredictionError as exc:
            self.stderr.write(f"Demo model: {exc}")

    @staticmethod
    def _stop(procs: dict[str, subprocess.Popen]) -> None:
        stop_process_groups(procs.values())
