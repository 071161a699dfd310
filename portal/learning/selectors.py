"""Reads of training jobs, scoped as validation sets are: a job is visible to users with a role
on every site of the sets it learns from (superusers and the command line see them all)."""

from django.db.models import QuerySet
from django.urls import reverse

from inference_worker import progress as training_progress_file
from portal.accounts.selectors import site_scope
from portal.ingest.models import Site
from portal.learning.models import TrainingJob
from portal.learning.services import training_progress


def training_job_list(*, user) -> QuerySet[TrainingJob]:
    jobs = TrainingJob.objects.select_related(
        "parent", "result_version", "report", "site", "holdout__validation_set"
    )
    if user is None:
        return jobs
    inside = Site.objects.filter(site_scope(user=user, field="pk")).values("pk")
    outside = Site.objects.exclude(pk__in=inside)
    return jobs.exclude(set_versions__validation_set__sites__in=outside).distinct()


def _fraction(job: TrainingJob, progress: dict | None) -> float:
    if job.state == TrainingJob.State.DONE:
        return 1.0
    if not progress or progress.get("state") != training_progress_file.TRAINING:
        return 0.0
    epochs, epoch = progress.get("epochs") or 1, progress.get("epoch") or 1
    steps, step = progress.get("steps") or 1, progress.get("step") or 0
    return round(min(1.0, ((epoch - 1) + step / steps) / epochs), 4)


def _state(job: TrainingJob, progress: dict | None) -> str:
    """Queued until a worker writes its progress file; the stored end state after that."""
    if job.state == TrainingJob.State.QUEUED and progress:
        return TrainingJob.State.RUNNING
    return job.state


def _report(job: TrainingJob) -> dict | None:
    """The side-by-side figures the activation decision rests on."""
    report = job.report
    if report is None:
        return None
    data = {
        "id": report.pk,
        "state": report.state,
        "url": reverse("reports:detail", args=[report.pk]),
    }
    result = report.result or {}
    if result.get("overall") and result.get("compare"):
        data["mae_months"] = result["overall"]["mae_months"]
        data["parent_mae_months"] = result["compare"]["overall"]["mae_months"]
        data["n"] = result["overall"]["n"]
    return data


def training_job_status(*, job: TrainingJob) -> dict:
    progress = training_progress(job=job) if job.finished_at is None else None
    return {
        "id": job.pk,
        "name": job.name,
        "mode": job.mode,
        "method": job.method or None,
        "parent": job.parent.name,
        "parent_sha256": job.parent.sha256,
        "site": job.site.slug if job.site else None,
        "held_out": job.provenance.get("held_out"),
        "cases": job.cases,
        "epochs": job.epochs,
        "split": job.split,
        "validation_sets": job.provenance.get("validation_sets", []),
        "state": _state(job, progress),
        "failure_reason": job.failure_reason,
        "progress": _fraction(job, progress),
        "epoch": (progress or {}).get("epoch"),
        "eta_seconds": (progress or {}).get("eta_seconds"),
        "fit": job.fit,
        "model": job.result_version.name if job.result_version else None,
        "model_sha256": job.result_version.sha256 if job.result_version else None,
        "report": _report(job),
        "activated_at": job.activated_at,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }
