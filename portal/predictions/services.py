"""Model versions, prediction jobs and storing what the inference workers send back.

The portal never runs the model: it sends batches by task name to the `inference` queue and the
workers answer by task name on the `default` queue (DESIGN.md, How data flows, step 2). Sending
and recovering stalled jobs live in `dispatch.py`.
"""

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from inference_worker import card as checkpoint_card
from inference_worker import conformal
from inference_worker.ages import DAYS_PER_MONTH, age_group
from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from portal.core import outbox
from portal.ingest.models import Image, Site, Upload
from portal.predictions.models import JobImage, ModelVersion, Prediction, PredictionJob
from portal.predictions.paths import strip_server_paths
from portal.predictions.selectors import calibration_current

log = logging.getLogger(__name__)
PREDICT_TASK = "inference_worker.predict_batch"
STORE_TASK = "portal.predictions.store_results"
DISPATCH_TASK = "portal.predictions.dispatch"
SWEEP_TASK = "portal.predictions.sweep"
# Sent when a job ends; the reports area (higher up: DESIGN.md, "Apps depend one way") runs it.
JOB_FINISHED_TASK = "portal.reports.prediction_job_finished"
INFERENCE_QUEUE = "inference"
DEFAULT_QUEUE = outbox.DEFAULT_QUEUE
# Every message the portal sends for a job carries its id here too, so that the sweep can tell
# which jobs the queues still hold without decoding bodies.
JOB_HEADER = "portal_job"
CARD, WEIGHTS = checkpoint_card.CARD, checkpoint_card.WEIGHTS


class PredictionError(Exception):
    """A request the predictions area refuses, with a reason for the user."""


def _read_verified_card(folder: Path) -> dict:
    """The same verification the inference workers apply, plus what registering needs."""
    try:
        card = checkpoint_card.verify(folder)
    except (checkpoint_card.CheckpointError, OSError) as exc:
        raise PredictionError(f"{exc}; refusing the checkpoint") from exc
    for key in ("architecture", "input_size", "normalisation"):
        if key not in card:
            raise PredictionError(f"{folder / CARD}: no {key!r}")
    return card


def model_version_register(
    *, folder: Path, name: str | None = None, activate: bool = False, user=None
) -> ModelVersion:
    """Verify a checkpoint folder and copy it into storage (`models/<name>/`)."""
    card = _read_verified_card(folder)
    name = slugify(name or card.get("name") or folder.name)
    existing = ModelVersion.objects.filter(name=name).first()
    if existing and existing.sha256 != card["sha256"]:
        raise PredictionError(f"model version {name!r} exists with other weights; pick a new name")
    if existing is None:
        relative = f"models/{name}"
        target = settings.DATA_DIR / relative
        staging = target.with_name(f".{name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copy2(folder / card.get("weights", WEIGHTS), staging / WEIGHTS)
        (staging / CARD).write_text(json.dumps({**card, "weights": WEIGHTS}, indent=2))
        _read_verified_card(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        with transaction.atomic():
            existing = ModelVersion.objects.create(
                name=name,
                architecture=card["architecture"],
                input_size=card["input_size"],
                path=relative,
                sha256=card["sha256"],
                card=card,
            )
            audit_record(
                actor=user,
                action=AuditAction.MODEL_REGISTER,
                target=name,
                after={"architecture": existing.architecture, "sha256": existing.sha256},
            )
    if activate:
        model_version_activate(version=existing, user=user)
    return existing


def model_version_activate(*, version: ModelVersion, user=None) -> ModelVersion:
    """Make `version` the one model every site's queue is scored by (on the record, with the
    version it replaces; activating the active version changes and records nothing)."""
    with transaction.atomic():
        previous = list(
            ModelVersion.objects.select_for_update()
            .filter(is_active=True)
            .values_list("name", flat=True)
        )
        if previous != [version.name]:
            ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(
                is_active=False
            )
            ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
            audit_record(
                actor=user,
                action=AuditAction.MODEL_ACTIVATE,
                target=version.name,
                before={"active": previous[0] if previous else None},
                after={"active": version.name, "sha256": version.sha256},
            )
    version.refresh_from_db()
    return version


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def prediction_job_create(
    *,
    model_version: ModelVersion | None = None,
    site: Site | None = None,
    upload: Upload | None = None,
    image_ids: list[int] | None = None,
    user=None,
    retry_failed: bool = False,
) -> PredictionJob:
    """Queue every image of the site, upload or list that has no prediction from this version
    yet (with `retry_failed`: whose prediction from it failed). Images the worker found
    unreadable are left out: no retry can read them.

    Only the job and its (job, image) rows are written here; the batches are sent by the
    dispatch task, enqueued when the transaction commits, in chunks that can resume.
    """
    version = model_version or active_model_version()
    if version is None:
        raise PredictionError("no active model version: register one with model_register")
    images: QuerySet[Image] = Image.objects.filter(unreadable="")
    if image_ids is not None:
        images = images.filter(pk__in=image_ids)
    if upload is not None:
        images = images.filter(upload=upload)
    elif site is not None:
        images = images.filter(site=site)
    version_predictions = Prediction.objects.filter(model_version=version)
    if retry_failed:
        images = images.filter(pk__in=version_predictions.exclude(error="").values("image_id"))
    else:
        images = images.exclude(pk__in=version_predictions.values("image_id"))
    job = PredictionJob.objects.create(
        model_version=version,
        site=site or (upload.site if upload else None),
        upload=upload,
        created_by=user,
        dispatches=1,
    )
    total = _job_rows_create(job=job, images=images)
    audit_record(
        actor=user,
        action=AuditAction.JOB_CREATE,
        site_id=job.site_id,
        target=f"job {job.pk}",
        after={"job": job.pk, "model": version.name, "images": total},
    )
    if total:
        PredictionJob.objects.filter(pk=job.pk).update(total=total)
        job.total = total
        transaction.on_commit(lambda: dispatch_enqueue(job_id=job.pk, round_=1))
    else:
        job.state, job.finished_at = PredictionJob.State.DONE, timezone.now()
        job.save(update_fields=["state", "finished_at"])
    return job


def _job_rows_create(*, job: PredictionJob, images: QuerySet[Image]) -> int:
    """One `INSERT ... SELECT`: a site's 128,000 ids never travel through Python."""
    select_sql, params = images.order_by().values("id").query.sql_with_params()
    table = JobImage._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (job_id, image_id, state) "  # noqa: S608 (names are ours)
            f"SELECT %s, selected.id, %s FROM ({select_sql}) selected",
            [job.pk, JobImage.State.PENDING, *params],
        )
        return cursor.rowcount


def dispatch_enqueue(*, job_id: int, round_: int) -> None:
    """Send the dispatch task; a broker that is down leaves the job for the sweep to find."""
    outbox.send(DISPATCH_TASK, args=[job_id, round_], headers={JOB_HEADER: job_id})


@dataclass(frozen=True)
class ExpectedError:
    """The model's expected error the score divides by, and whose figure it is: `source`
    "group" (the predicted age's `group` and the `sex`), "overall" (the card's overall MAE) or
    "none" (the card has neither: 1 month stands in)."""

    months: float
    source: str
    group: str | None = None
    sex: str | None = None


def expected_error(*, card: dict, predicted_days: int, sex: str) -> ExpectedError:
    """The one reading of the card's `expected_error_months["<group> <sex>"]` (else its
    `"overall"`, else 1 month): the score and the queue's explanation both use it."""
    expected = card.get("expected_error_months") or {}
    group = age_group(predicted_days)
    months = expected.get(f"{group} {sex}") if group else None
    if months:
        return ExpectedError(float(months), "group", group=group, sex=sex)
    if overall := expected.get("overall"):
        return ExpectedError(float(overall), "overall")
    return ExpectedError(1.0, "none")


def outlier_score(
    *,
    card: dict,
    predicted_days: int,
    recorded_days: int,
    sex: str,
    interval: tuple[int, int] | None = None,
) -> float:
    """The rule of `settings.OUTLIER_RULE`. "expected_error": |residual| over the model's
    expected error for the predicted age's group and the sex (`expected_error`). "interval"
    (given the version's calibrated `interval`): |residual| over the interval's reach from the
    prediction on the recorded age's side, so that a score over 1 is exactly "the recorded age
    is outside the interval" and the queue still orders by how far (an interval end that is the
    prediction itself, at 0 or 18 years, reaches one day)."""
    residual = recorded_days - predicted_days
    if interval is not None and settings.OUTLIER_RULE == "interval":
        low, high = interval
        reach = high - predicted_days if residual > 0 else predicted_days - low
        return abs(residual) / max(reach, 1)
    months = expected_error(card=card, predicted_days=predicted_days, sex=sex).months
    return abs(residual) / DAYS_PER_MONTH / months


_REPLACED_FIELDS = [
    "job",
    "site",
    "age_days",
    "residual_days",
    "score",
    "interval_low_days",
    "interval_high_days",
    "heatmap",
    "heatmap_sha256",
    "heatmap_scale",
    "heatmap_blank",
    "error",
    "timing_ms",
    "worker",
    "created_at",
]


def _heatmap_reading(*, result: dict, stored: bool) -> dict:
    """How to read the stored map: its scale ("positive" when the worker, older than signed
    maps, sent none) and whether it is blank (None when unknown or there is no map)."""
    scale = result.get("heatmap_scale")
    blank = result.get("heatmap_blank")
    return {
        "heatmap_scale": scale
        if scale in Prediction.HeatmapScale.values
        else Prediction.HeatmapScale.POSITIVE,
        "heatmap_blank": blank if stored and isinstance(blank, bool) else None,
    }


def prediction_interval(
    *, calibration: dict | None, predicted_days: int | None, site: str | None
) -> tuple[int, int] | None:
    """The calibrated interval of a prediction (`conformal.interval`); None when uncalibrated."""
    if calibration is None or predicted_days is None:
        return None
    return conformal.interval(calibration, predicted_days, site)


def _prediction_values(
    *,
    version: ModelVersion,
    image: Image,
    result: dict,
    worker: str,
    calibration: dict | None = None,
    site: str | None = None,
) -> dict:
    age = result.get("age_days")
    error = result.get("error") or ("" if age is not None else "the worker sent no age")
    if error:
        age = None
    interval = prediction_interval(calibration=calibration, predicted_days=age, site=site)
    return {
        "site_id": image.site_id,
        "age_days": age,
        "residual_days": None if age is None else age - image.age_days,
        "score": None
        if age is None
        else outlier_score(
            card=version.card,
            predicted_days=age,
            recorded_days=image.age_days,
            sex=image.sex,
            interval=interval,
        ),
        "interval_low_days": interval[0] if interval else None,
        "interval_high_days": interval[1] if interval else None,
        "heatmap": "" if error else (result.get("heatmap") or ""),
        "heatmap_sha256": "" if error else (result.get("heatmap_sha256") or "")[:64],
        **_heatmap_reading(result=result, stored=not error and bool(result.get("heatmap"))),
        "error": strip_server_paths(str(error))[:2000],
        "timing_ms": result.get("ms") or {},
        "worker": worker[:255],
    }


def prediction_results_store(*, answer: dict) -> PredictionJob | None:
    """Store a worker's answer for one batch in one transaction, in bulk.

    One prediction per image and version: a stored success is never replaced; a stored failure
    is replaced by the new answer (a retry). A failure marked `unreadable` also marks the image
    (the review queue leaves it out). Every unfinished job of this version that holds one of the
    images counts it once, from the outcome actually stored.
    """
    version = ModelVersion.objects.get(name=answer["model"])
    results = {
        r["image"]: r for r in answer.get("results") or [] if isinstance(r.get("image"), int)
    }
    worker = str(answer.get("worker") or "")
    now = timezone.now()
    with transaction.atomic():
        job_id = PredictionJob.objects.filter(pk=answer.get("job")).values_list("pk", flat=True)
        job_id = job_id.first()
        images = Image.objects.filter(pk__in=list(results)).only("pk", "site_id", "age_days", "sex")
        images = {image.pk: image for image in images}  # a deleted image is skipped
        existing = {
            p.image_id: p
            for p in Prediction.objects.select_for_update()
            .filter(model_version=version, image_id__in=list(images))
            .only("pk", "image_id", "error")
        }
        current = calibration_current(version=version)
        slugs = dict(
            Site.objects.filter(pk__in={i.site_id for i in images.values()}).values_list(
                "pk", "slug"
            )
        )
        new, replaced = [], []
        for image_id, image in images.items():
            values = _prediction_values(
                version=version,
                image=image,
                result=results[image_id],
                worker=worker,
                calibration=current.record if current else None,
                site=slugs.get(image.site_id),
            )
            old = existing.get(image_id)
            if old is None:
                new.append(
                    Prediction(image_id=image_id, model_version=version, job_id=job_id, **values)
                )
            elif old.error:
                for name, value in {**values, "job_id": job_id, "created_at": now}.items():
                    setattr(old, name, value)
                replaced.append(old)
        Prediction.objects.bulk_create(new, ignore_conflicts=True)
        if replaced:
            Prediction.objects.bulk_update(replaced, _REPLACED_FIELDS)
        # The residual ratio above is the score until triage weighs the patient's other films
        # and the dates; it rescores those films too (triage imports this module: imported here).
        from portal.predictions.triage import triage_rescore

        triage_rescore(
            version=version, image_ids=[p.image_id for p in new + replaced if not p.error]
        )
        _mark_unreadable(results=results, image_ids=images)
        stored = Prediction.objects.filter(model_version=version, image_id__in=list(images))
        outcome = dict(stored.values_list("image_id", "error"))
        done = [i for i, error in outcome.items() if not error]
        failed = [i for i, error in outcome.items() if error]
        _job_rows_settle(version=version, done=done, failed=failed, now=now)
    return PredictionJob.objects.filter(pk=job_id).first() if job_id else None


def _mark_unreadable(*, results: dict[int, dict], image_ids) -> None:
    """`unreadable: true` failures: the image itself cannot be decoded; one update per reason."""
    by_reason: dict[str, list[int]] = {}
    for image_id in image_ids:
        result = results[image_id]
        if result.get("unreadable") is True:
            reason = strip_server_paths(str(result.get("error") or "unreadable"))[:500]
            by_reason.setdefault(reason, []).append(image_id)
    for reason, ids in by_reason.items():
        Image.objects.filter(pk__in=ids).update(unreadable=reason)


def _job_rows_settle(*, version: ModelVersion, done: list[int], failed: list[int], now) -> None:
    """Pending rows of these images become done or failed in every job of this version, and each
    job's counters move by exactly the rows that changed (the jobs are locked in id order)."""
    pending = JobImage.objects.filter(
        image_id__in=done + failed, state=JobImage.State.PENDING, job__model_version=version
    )
    job_ids = sorted(set(pending.values_list("job_id", flat=True)))
    for job in PredictionJob.objects.select_for_update().filter(pk__in=job_ids).order_by("pk"):
        rows = JobImage.objects.filter(job=job, state=JobImage.State.PENDING)
        moved_done = rows.filter(image_id__in=done).update(state=JobImage.State.DONE)
        moved_failed = rows.filter(image_id__in=failed).update(state=JobImage.State.FAILED)
        if not moved_done + moved_failed:
            continue
        job.done_count += moved_done
        job.failed_count += moved_failed
        job.progressed_at = now
        if job.state == PredictionJob.State.QUEUED:
            job.state, job.started_at = PredictionJob.State.RUNNING, now
        if job.done_count + job.failed_count >= job.total and job.finished_at is None:
            prediction_job_finish(job=job, now=now)
        job.save(
            update_fields=[
                "done_count",
                "failed_count",
                "progressed_at",
                "state",
                "started_at",
                "finished_at",
                "failure_reason",
            ]
        )


def prediction_job_finish(*, job: PredictionJob, now, reason: str = "") -> None:
    """Set the end state (not saved): failed with `reason`, or when every image failed. Once
    the caller's transaction commits, whatever waits for the job (a report) is told."""
    outbox.send_on_commit(JOB_FINISHED_TASK, args=[job.pk])
    all_failed = job.done_count == 0 and job.failed_count > 0
    failed = bool(reason) or all_failed
    job.state = PredictionJob.State.FAILED if failed else PredictionJob.State.DONE
    job.failure_reason = reason or ("every image failed" if all_failed else "")
    job.finished_at = now
