"""Training jobs: fine-tune or recalibrate a registered model version from the curated cases of
frozen validation sets, on the `inference` queue; register what comes back, with a report
against the parent on a held-out frozen set; activate only when a lead decides to.

The portal never trains: it sends the cases by task name (`FINETUNE_TASK`) and the worker
answers by task name (`RESULT_TASK`). The worker's `progress.json` in the job's folder is the
progress the Jobs page and the API show.
"""

import datetime as dt
import hashlib
import logging
import shutil
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from inference_worker import progress, recalibration
from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from portal.core import outbox
from portal.ingest.models import Site
from portal.learning.models import TrainingJob
from portal.predictions.models import ModelVersion
from portal.predictions.services import (
    INFERENCE_QUEUE,
    PredictionError,
    model_version_activate,
    model_version_register,
)
from portal.reports.services import report_create
from portal.validation import selectors as sets
from portal.validation.models import ValidationItem, ValidationSetVersion
from portal.validation.services import ValidationSetForbidden, require_lead

log = logging.getLogger(__name__)
FINETUNE_TASK = "inference_worker.finetune"
RESULT_TASK = "portal.learning.training_result"
RESEND_TASK = "portal.learning.resend"
TRAINING_FOLDER = "models/.training"
DEFAULT_EPOCHS = 3
VAL_FRACTION = 0.2
METHODS = recalibration.METHODS
# bench/finetune.py: on 200 curated east films the isotonic map cut the east MAE by 11%, the
# straight line by 7%.
DEFAULT_METHOD = "isotonic"
MAX_RECALIBRATION_CASES = recalibration.MAX_CASES


class TrainingError(Exception):
    """A training job that cannot be made, with the reason."""


class TrainingForbidden(TrainingError):
    """The user does not lead every site the job learns from or is judged on."""


class TrainingNotFound(TrainingError):
    """A parent, set or site that does not exist or that the user does not see."""


def patient_key(*, site: str, pseudonym: str) -> str:
    """An opaque key per patient: equal for a patient's films; no pseudonym leaves the portal."""
    return hashlib.sha256(f"{site}:{pseudonym}".encode()).hexdigest()[:16]


def job_folder(job: TrainingJob) -> str:
    return f"{TRAINING_FOLDER}/job-{job.pk}"


def training_progress(*, job: TrainingJob) -> dict | None:
    """What the worker last wrote (`inference_worker.progress`); None before it starts."""
    return progress.read(settings.DATA_DIR / job_folder(job))


def _cases(
    *, versions: Sequence[ValidationSetVersion], site: Site | None, max_cases: int | None
) -> list[ValidationItem]:
    """Each image once (the latest set's item when sets overlap), of `site` when given, in a
    fixed pseudo-random order (by file hash), at most `max_cases`."""
    items = ValidationItem.objects.filter(version__in=versions).select_related("image", "site")
    if site is not None:
        items = items.filter(site=site)
    chosen: dict[int, ValidationItem] = {}
    for item in items.order_by("version_id"):
        chosen[item.image_id] = item
    ordered = sorted(chosen.values(), key=lambda i: (i.sha256, i.image_id))
    return ordered[:max_cases] if max_cases else ordered


def _patients(items) -> set[str]:
    return {patient_key(site=i.site.slug, pseudonym=i.image.patient_pseudonym) for i in items}


def _sites(versions: Sequence[ValidationSetVersion]) -> list[Site]:
    return list(Site.objects.filter(validation_sets__versions__in=versions).distinct())


def training_job_create(
    *,
    parent: ModelVersion,
    versions: Sequence[ValidationSetVersion],
    name: str,
    recalibrate_only: bool = False,
    method: str = DEFAULT_METHOD,
    site: Site | None = None,
    holdout: ValidationSetVersion | None = None,
    epochs: int = DEFAULT_EPOCHS,
    max_cases: int | None = None,
    seed: int = 0,
    user=None,
) -> TrainingJob:
    """Check and record the job, then send it to the `inference` queue once committed.

    Only a lead of every site of the training sets and of the held-out set may start one (the
    command line acts as the operator). The held-out set must share no patient with the cases.
    """
    if not versions:
        raise TrainingError("name at least one frozen validation set to learn from")
    name = slugify(name)
    if not name:
        raise TrainingError("the new version needs a name")
    if (
        ModelVersion.objects.filter(name=name).exists()
        or TrainingJob.objects.filter(name=name).exists()
    ):
        raise TrainingError(f"model version {name!r} exists or is being trained; pick a new name")
    try:
        require_lead(user=user, sites=_sites([*versions, *([holdout] if holdout else [])]))
    except ValidationSetForbidden as exc:  # the validation area's refusal, in our words
        raise TrainingForbidden(str(exc)) from exc
    mode = TrainingJob.Mode.RECALIBRATE if recalibrate_only else TrainingJob.Mode.FINETUNE
    if recalibrate_only:
        if method not in METHODS:
            raise TrainingError(f"method {method!r}: one of {', '.join(METHODS)}")
        site = site or _only_site(versions)
        max_cases = min(max_cases or MAX_RECALIBRATION_CASES, MAX_RECALIBRATION_CASES)
    elif epochs < 1:
        raise TrainingError("fine-tuning needs at least one epoch")
    items = _cases(versions=versions, site=site, max_cases=max_cases)
    minimum = recalibration.MIN_CASES
    if len(items) < minimum:
        raise TrainingError(f"{len(items)} curated cases: at least {minimum} are needed")
    if holdout is not None:
        shared = _patients(items) & _patients(
            ValidationItem.objects.filter(version=holdout).select_related("image", "site")
        )
        if shared:
            raise TrainingError(
                f"the held-out set {holdout} shares {len(shared)} patients with the training "
                "cases: hold out other patients"
            )
    split = (
        {"method": "none: every case fits the recalibration"}
        if recalibrate_only
        else {"method": "patient-level", "val_fraction": VAL_FRACTION, "seed": seed}
    )
    provenance = {
        "mode": mode,
        "method": method if recalibrate_only else None,
        "validation_sets": [
            {
                "name": v.validation_set.name,
                "version": v.number,
                "manifest_sha256": v.manifest_sha256,
                "items": v.item_count,
            }
            for v in versions
        ],
        "site": site.slug if site else None,
        "cases": len(items),
        "epochs": 0 if recalibrate_only else epochs,
        "held_out": f"{holdout.validation_set.name}:{holdout.number}" if holdout else None,
    }
    with transaction.atomic():
        job = TrainingJob.objects.create(
            name=name,
            mode=mode,
            method=method if recalibrate_only else "",
            parent=parent,
            site=site,
            holdout=holdout,
            epochs=0 if recalibrate_only else epochs,
            cases=len(items),
            split=split,
            provenance=provenance,
            created_by=user,
        )
        job.set_versions.set(versions)
        audit_record(
            actor=user,
            action=AuditAction.JOB_CREATE,
            site_id=site.pk if site else None,
            target=f"training job {job.pk}",
            after={"training_job": job.pk, "parent": parent.name, **provenance},
        )
        _send(job, payload=_payload(job=job, items=items), now=timezone.now())
    return job


def _only_site(versions: Sequence[ValidationSetVersion]) -> Site:
    sites = _sites(versions)
    if len(sites) != 1:
        raise TrainingError("the sets span several sites: name the site to recalibrate for")
    return sites[0]


def _payload(*, job: TrainingJob, items: list[ValidationItem]) -> dict:
    return {
        "job": job.pk,
        "mode": job.mode,
        "method": job.method or None,
        "name": job.name,
        "parent": {"name": job.parent.name, "path": job.parent.path, "sha256": job.parent.sha256},
        "samples": [
            {
                "path": item.image.file,
                "age_days": item.curated_age_days,
                "sex": item.sex,
                "patient": patient_key(site=item.site.slug, pseudonym=item.image.patient_pseudonym),
                "site": item.site.slug,
            }
            for item in items
        ],
        "epochs": job.epochs,
        "val_fraction": job.split.get("val_fraction", 0.0),
        "seed": job.split.get("seed", 0),
        "out": job_folder(job),
        "provenance": job.provenance,
    }


def _send(job: TrainingJob, *, payload: dict, now: dt.datetime) -> None:
    TrainingJob.objects.filter(pk=job.pk).update(sent_at=now)
    outbox.send_on_commit(FINETUNE_TASK, args=[payload], queue=INFERENCE_QUEUE)


def training_job_resend(*, sent_before: dt.datetime | None = None) -> int:
    """Send again each queued job that no worker has started (no progress file) since its last
    send: a broker outage delays training and never loses it. Returns how many were sent."""
    now = timezone.now()
    cutoff = sent_before or now - dt.timedelta(seconds=settings.RESEND_AFTER_S)
    sent = 0
    for job in TrainingJob.objects.filter(state=TrainingJob.State.QUEUED, sent_at__lt=cutoff):
        if training_progress(job=job) is not None:
            continue  # a worker has it
        items = _cases(
            versions=list(job.set_versions.all()), site=job.site, max_cases=job.cases or None
        )
        with transaction.atomic():
            _send(job, payload=_payload(job=job, items=items), now=now)
        sent += 1
    return sent


def training_result_store(*, answer: dict) -> TrainingJob | None:
    """The worker's answer: register the new version (its card holds the provenance), queue
    the report against the parent on the held-out set, or record the failure. Idempotent."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().filter(pk=answer.get("job")).first()
        if job is None or job.state in (TrainingJob.State.DONE, TrainingJob.State.FAILED):
            return job
        job.finished_at = timezone.now()
        if answer.get("error"):
            job.state, job.failure_reason = TrainingJob.State.FAILED, str(answer["error"])[:2000]
            job.save(update_fields=["state", "failure_reason", "finished_at"])
            return job
        try:
            version = model_version_register(
                folder=settings.DATA_DIR / answer["folder"], name=job.name, user=job.created_by
            )
        except PredictionError as exc:
            job.state, job.failure_reason = TrainingJob.State.FAILED, str(exc)[:2000]
            job.save(update_fields=["state", "failure_reason", "finished_at"])
            return job
        job.result_version = version
        job.split = {**job.split, **(answer.get("split") or {})}
        job.fit = answer.get("fit") or {}
        job.state = TrainingJob.State.DONE
        if job.holdout is not None:
            job.report = report_create(
                version=job.holdout, model=version, compare=job.parent, user=job.created_by
            )
        job.save(update_fields=["result_version", "split", "fit", "state", "report", "finished_at"])
    # The registered copy is what serves; the job folder keeps its progress file only.
    shutil.rmtree(settings.DATA_DIR / job_folder(job) / "cache", ignore_errors=True)
    return job


def training_job_activate(*, job: TrainingJob, user=None) -> ModelVersion:
    """The lead's decision, taken beside the report: the new version becomes the active one."""
    try:
        require_lead(user=user, sites=_sites(list(job.set_versions.all())))
    except ValidationSetForbidden as exc:
        raise TrainingForbidden(str(exc)) from exc
    if job.result_version is None:
        raise TrainingError("the job has not produced a version yet")
    version = model_version_activate(version=job.result_version, user=user)
    TrainingJob.objects.filter(pk=job.pk).update(activated_by=user, activated_at=timezone.now())
    job.refresh_from_db()
    return version


def training_job_request(
    *,
    user,
    parent: str,
    validation_sets: Sequence[str],
    name: str,
    holdout: str | None = None,
    site: str | None = None,
    **options,
) -> TrainingJob:
    """`training_job_create` from names as the command line and the API give them
    (`NAME[:VERSION]` for sets, the latest frozen version when no number is given); the sets
    are looked up as `user` sees them."""
    parent_version = ModelVersion.objects.filter(name=parent).first()
    if parent_version is None:
        raise TrainingNotFound(f"no model version {parent}")
    try:
        versions = [
            sets.version_get(user=user, name=n, number=v) for n, v in _refs(validation_sets)
        ]
        held_out = None
        if holdout:
            ((held_name, held_number),) = _refs([holdout])
            held_out = sets.version_get(user=user, name=held_name, number=held_number)
    except sets.NotFound as exc:
        raise TrainingNotFound(str(exc)) from exc
    chosen_site = None
    if site:
        chosen_site = Site.objects.filter(slug=site).first()
        if chosen_site is None:
            raise TrainingNotFound(f"no site {site}")
    return training_job_create(
        parent=parent_version,
        versions=versions,
        name=name,
        holdout=held_out,
        site=chosen_site,
        user=user,
        **options,
    )


def _refs(refs: Sequence[str]) -> list[tuple[str, int | None]]:
    return [sets.parse_ref(ref) for ref in refs]
