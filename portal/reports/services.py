"""Reports: metrics by age group, sex and site for one model version (or two side by side) on
a frozen validation set, from its frozen items, so that later reviews never change a report.

Missing predictions are made first, through the inference queue (a prediction job per model),
and the report waits for them; the metric code is `inference_worker.metrics`, the same module
`inference_worker.evaluate` uses, so the two always agree.
"""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference_worker import metrics
from inference_worker.ages import AGE_GROUPS, MAX_AGE_YEARS
from portal.accounts.audit import AuditAction
from portal.core import outbox
from portal.core.numbers import finite_number
from portal.predictions.blind import COPY_TOLERANCE_DAYS
from portal.predictions.models import ModelVersion, Prediction, PredictionJob
from portal.predictions.services import prediction_job_create
from portal.reports.agreement import report_agreement
from portal.reports.coverage import coverage_section
from portal.reports.models import Report
from portal.review.models import Decision, Review
from portal.validation.models import ValidationItem, ValidationSetVersion
from portal.validation.services import version_audit

BUILD_TASK = "portal.reports.report_build"
RESEND_TASK = "portal.reports.resend"
DEFAULT_GROUPS = [list(g) for g in AGE_GROUPS]
# The default groups as the forms and the CLI write them: "0,1,3,6,12,18".
DEFAULT_GROUPS_TEXT = ",".join(f"{b:g}" for b in [AGE_GROUPS[0][0], *(g[1] for g in AGE_GROUPS)])


class ReportError(Exception):
    """A report that cannot be made, with the reason."""


def parse_age_groups(text: str) -> list[list[float]]:
    """`0,1,3,6,12,18` -> [[0, 1], [1, 3], ...]: years, each group [low, high) with the
    boundary days of `ages.group_days` (as the queue and set filters); plain decimals from 0 to
    18, increasing."""
    bounds = [finite_number(part, low=0, high=MAX_AGE_YEARS) for part in text.split(",")]
    if len(bounds) < 2 or None in bounds or bounds != sorted(set(bounds)):
        raise ReportError(
            f"age_groups {text!r}: expected increasing numbers of years from 0 to "
            f"{MAX_AGE_YEARS}, e.g. {DEFAULT_GROUPS_TEXT}"
        )
    return [[low, high] for low, high in zip(bounds, bounds[1:], strict=False)]


def missing_images(*, version: ValidationSetVersion, model: ModelVersion) -> list[int]:
    """Items of the version without a successful prediction from the model."""
    predicted = Prediction.objects.filter(model_version=model, error="").values("image_id")
    return list(version.items.exclude(image_id__in=predicted).values_list("image_id", flat=True))


def report_create(
    *,
    version: ValidationSetVersion,
    model: ModelVersion,
    compare: ModelVersion | None = None,
    age_groups: list[list[float]] | None = None,
    internal_sites: list[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    user=None,
    build: bool = True,
) -> Report:
    """A report row; with `build`, the Celery task builds it once the transaction commits
    (the CLI builds its own, in the foreground)."""
    if compare is not None and compare.pk == model.pk:
        raise ReportError("compare a model with another one")
    with transaction.atomic():
        report = Report.objects.create(
            version=version,
            model_version=model,
            compare_version=compare,
            age_groups=age_groups or DEFAULT_GROUPS,
            internal_sites=sorted(internal_sites or []),
            resamples=resamples,
            seed=seed,
            created_by=user,
        )
        version_audit(
            user=user,
            version=report.version,
            action=AuditAction.REPORT_BUILD,
            after={
                "report": report.pk,
                "model": model.name,
                "compare_model": compare.name if compare else None,
                "age_groups": report.age_groups,
                "internal_sites": report.internal_sites,
            },
        )
    if build:
        _send(report, timezone.now())
    return report


def _send(report: Report, now: dt.datetime) -> None:
    Report.objects.filter(pk=report.pk).update(sent_at=now)
    outbox.send_on_commit(BUILD_TASK, args=[report.pk])


def report_download_record(*, user, report: Report, fmt: str) -> None:
    """A report file handed to `user`, on the record."""
    version_audit(
        user=user,
        version=report.version,
        action=AuditAction.REPORT_DOWNLOAD,
        after={"report": report.pk, "format": fmt},
    )


def _models(report: Report) -> list[ModelVersion]:
    return [m for m in (report.model_version, report.compare_version) if m is not None]


def report_predict_missing(*, report: Report) -> list[int]:
    """Queue prediction jobs for the items that lack a prediction; returns their ids."""
    jobs = []
    for model in _models(report):
        missing = missing_images(version=report.version, model=model)
        if missing:
            with transaction.atomic():
                job = prediction_job_create(model_version=model, image_ids=missing)
            jobs.append(job.pk)
    return jobs


def report_build(*, report_id: int) -> Report:
    """What the task runs, step by step: queue what is missing, then compute once it is in.
    It never waits: the end of each prediction job it queued runs it again
    (`reports_resume`), and the sweep (`report_resend`) catches a message a broker outage
    lost. Running it again at any point does nothing twice."""
    report = Report.objects.select_related("version", "model_version", "compare_version").get(
        pk=report_id
    )
    with transaction.atomic():  # a redelivered task must not queue the predictions twice
        report = Report.objects.select_for_update().get(pk=report.pk)
        if report.state in (Report.State.DONE, Report.State.FAILED):
            return report
        if report.state == Report.State.QUEUED:
            report.jobs = report_predict_missing(report=report)
            report.state = Report.State.PREDICTING
            report.save(update_fields=["jobs", "state"])
    if not report_predictions_finished(report=report):
        return report
    return report_finish(report=report)


def reports_resume(*, job_id: int) -> list[int]:
    """A prediction job ended: build the reports that waited for it and for nothing else.
    Returns their ids."""
    waiting = Report.objects.filter(state=Report.State.PREDICTING).order_by("pk")
    resumed = []
    for report in waiting.only("pk", "jobs"):
        if job_id in report.jobs and report_predictions_finished(report=report):
            report_build(report_id=report.pk)
            resumed.append(report.pk)
    return resumed


def report_resend(*, sent_before: dt.datetime | None = None) -> int:
    """Send again the build of every report whose last send is older than `sent_before`
    (default: RESEND_AFTER_S ago) and that waits for it: still queued, or predicting with
    every job it waited for ended. As beat does every minute and `run_portal` at start;
    reports built in the foreground (the `report` command) are never sent. Returns how many
    were sent."""
    now = timezone.now()
    cutoff = sent_before or now - dt.timedelta(seconds=settings.RESEND_AFTER_S)
    waiting = Report.objects.filter(
        state__in=[Report.State.QUEUED, Report.State.PREDICTING], sent_at__lt=cutoff
    )
    sent = 0
    for report in waiting.order_by("pk").only("pk", "state", "jobs"):
        if report.state == Report.State.PREDICTING and not report_predictions_finished(
            report=report
        ):
            continue  # its jobs have their own sweep, and their end resumes it
        with transaction.atomic():
            locked = Report.objects.select_for_update().filter(pk=report.pk).first()
            if locked is not None and locked.state == report.state:
                _send(locked, now)
                sent += 1
    return sent


def report_predictions_finished(*, report: Report) -> bool:
    return not PredictionJob.objects.filter(pk__in=report.jobs, finished_at__isnull=True).exists()


def report_finish(*, report: Report) -> Report:
    """Compute and store the figures (the predictions it waited for are in)."""
    try:
        report.result = report_compute(report=report)
        report.state = Report.State.DONE
    except ReportError as exc:
        report.state, report.failure_reason = Report.State.FAILED, str(exc)
    report.finished_at = timezone.now()
    # Two runs may compute at once (a message sent again while the first ran): the first to
    # store its figures wins, and the other leaves them alone.
    stored = (
        Report.objects.filter(pk=report.pk)
        .exclude(state__in=[Report.State.DONE, Report.State.FAILED])
        .update(
            result=report.result,
            state=report.state,
            failure_reason=report.failure_reason,
            finished_at=report.finished_at,
        )
    )
    if not stored:
        report.refresh_from_db()
    return report


def report_progress(*, report: Report) -> dict:
    jobs = list(PredictionJob.objects.filter(pk__in=report.jobs))
    total = sum(j.total for j in jobs)
    done = sum(j.done_count + j.failed_count for j in jobs)
    return {"predicted": done, "to_predict": total}


@dataclass
class Points:
    true_days: list[int]
    predicted_days: list[int]
    compare_predicted_days: list[int] | None
    sex: list[str]
    site: list[str]
    missing: int

    def as_dict(self) -> dict:
        return {
            "true_days": self.true_days,
            "predicted_days": self.predicted_days,
            "compare_predicted_days": self.compare_predicted_days,
            "sex": self.sex,
            "site": self.site,
        }


def report_points(*, report: Report) -> Points:
    """The frozen items (curated age, sex, site) with each model's prediction; items a model
    could not predict are left out of every model's figures and counted."""
    models = _models(report)
    predicted = {
        m.pk: dict(
            Prediction.objects.filter(
                model_version=m, error="", image_id__in=report.version.items.values("image_id")
            ).values_list("image_id", "age_days")
        )
        for m in models
    }
    items = ValidationItem.objects.filter(version=report.version).select_related("site")
    points = Points([], [], [] if report.compare_version else None, [], [], 0)
    for item in items.order_by("image_id").iterator(chunk_size=5000):
        ages = [predicted[m.pk].get(item.image_id) for m in models]
        if any(a is None for a in ages):
            points.missing += 1
            continue
        points.true_days.append(item.curated_age_days)
        points.predicted_days.append(ages[0])
        if points.compare_predicted_days is not None:
            points.compare_predicted_days.append(ages[1])
        points.sex.append(item.sex)
        points.site.append(item.site.slug)
    return points


def report_copied_corrections(*, report: Report) -> dict:
    """Corrections that equal the report's model's output: the circularity of a model scored on
    ages its own prediction supplied. A correction (a decision that corrects the age, any read
    or adjudication) on an item of the frozen set, made before the set was frozen, counts as a
    copy when its age is within `COPY_TOLERANCE_DAYS` of the model's predicted age for that
    image. Counted per reader and site, with how many of each were made blind (`Review.blind`);
    `flagged_images` lists the items with at least one copy."""
    version, model = report.version, report.model_version
    items = version.items.values("image_id")
    predicted = dict(
        Prediction.objects.filter(model_version=model, error="", image_id__in=items).values_list(
            "image_id", "age_days"
        )
    )
    corrections = Review.objects.filter(
        image_id__in=items, decision=Decision.CORRECT, created_at__lte=version.frozen_at
    ).values_list("image_id", "reviewer__username", "image__site__slug", "age_days", "blind")
    counts = ("corrections", "copies", "blind_corrections", "blind_copies")
    readers: dict[tuple[str, str], dict] = {}
    flagged: set[int] = set()
    for image_id, reader, site, age, blind in corrections.order_by("id").iterator():
        entry = readers.setdefault(
            (reader, site), {"reader": reader, "site": site, **dict.fromkeys(counts, 0)}
        )
        model_age = predicted.get(image_id)
        copy = model_age is not None and abs(age - model_age) <= COPY_TOLERANCE_DAYS
        entry["corrections"] += 1
        entry["blind_corrections"] += blind
        entry["copies"] += copy
        entry["blind_copies"] += copy and blind
        if copy:
            flagged.add(image_id)
    by_reader = [readers[key] for key in sorted(readers)]
    return {
        "model": model.name,
        "tolerance_days": COPY_TOLERANCE_DAYS,
        **{name: sum(r[name] for r in by_reader) for name in counts},
        "by_reader": by_reader,
        "flagged_images": sorted(flagged),
    }


def report_compute(*, report: Report) -> dict:
    points = report_points(report=report)
    if not points.true_days:
        raise ReportError("no item of the set has a prediction from the model")
    groups = tuple(tuple(g) for g in report.age_groups)
    common = {"groups": groups, "sites": points.site, "resamples": report.resamples}
    sections = metrics.report(
        points.true_days, points.predicted_days, points.sex, seed=report.seed, **common
    )
    compare = paired = None
    if report.compare_version is not None:
        compare = metrics.report(
            points.true_days, points.compare_predicted_days, points.sex, seed=report.seed, **common
        )
        paired = metrics.paired_difference(
            points.true_days,
            points.predicted_days,
            points.compare_predicted_days,
            points.sex,
            seed=report.seed,
            **common,
        )
    paper = None
    if report.internal_sites:
        paper = metrics.paper_table(
            points.true_days,
            points.predicted_days,
            points.sex,
            points.site,
            report.internal_sites,
            groups=groups,
        )
    version = report.version
    return {
        "validation_set": {
            "name": version.validation_set.name,
            "version": version.number,
            "manifest_sha256": version.manifest_sha256,
            "items": version.item_count,
        },
        "model": report.model_version.name,
        "model_sha256": report.model_version.sha256,
        "compare_model": report.compare_version.name if report.compare_version else None,
        "compare_model_sha256": report.compare_version.sha256 if report.compare_version else None,
        "age_groups": report.age_groups,
        "bootstrap": {"resamples": report.resamples, "seed": report.seed, "confidence": 0.95},
        "missing_predictions": points.missing,
        "created_at": (report.created_at or timezone.now()).astimezone(dt.UTC).isoformat(),
        **sections,
        "compare": compare,
        "paired": paired,
        "paper_table": paper,
        "copied_corrections": report_copied_corrections(report=report),
        # Reader agreement on the double-read films (None where there are none).
        "agreement": report_agreement(report=report),
        "coverage": coverage_section(
            model=report.model_version,
            version=version,
            true_days=points.true_days,
            predicted_days=points.predicted_days,
            sites=points.site,
            groups=groups,
        ),
    }
