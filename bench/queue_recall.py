"""Review-queue recall benchmark: how many of the corrupted labels the demo model's review queue
puts first, per site profile and overall.

    python bench/queue_recall.py [--model var/models/demo] [--count 300] [--label-noise 0.08]
                                 [--misses]

Phantoms of a seed the model never saw, with label noise (`north` and `south`, the profiles it
was trained on, and `east`, which it never saw), go through the portal's path in a throwaway data
folder and SQLite database: ingest, the batches the portal queues answered in this process by the
inference worker's own code (`run_batch`, the body of `inference_worker.predict_batch`), the
answers stored by the portal's own task body, and the queue ordered by `review.selectors.queue`
with no threshold. recall@2k: the share of the k corrupted labels among the first 2k entries
(random order: 2k / N), for the triage score the queue orders by (`predictions.triage`) and, in
the same run, for the residual-only ranking it replaced (`services.outlier_score`); then by the
size of the error (|recorded - true|), against the goals of issue 19. `--misses` lists the large
errors the first 2k left out, with what the queue knew of each: why the goal is not met.

`--oracle E` asks what the goal needs of a model: every reading (calibration and queue) is then
`bench/floor.py`'s oracle's, from the phantom's hidden anatomy measured with a relative error E
(0: the floor), in place of the model's; the rest of the path is the same.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROFILES = ("north", "south", "east")
SEED = 424_242  # + the profile's index: the demo model saw seeds 101 (north) and 202 (south)
CALIBRATION_SEED = 525_252  # + the profile's index
GOAL_OVERALL, GOAL_LARGE, LARGE_MONTHS = 0.6, 0.9, 24  # issue 19: recall@2k on the demo sites
# Error sizes (|recorded - true|, months) the recall is broken down by: [low, high).
SIZES = ((0, 12), (12, 24), (24, None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "var" / "models" / "demo")
    parser.add_argument("--count", type=int, default=300, help="phantoms per site profile")
    parser.add_argument("--label-noise", type=float, default=0.08)
    parser.add_argument(
        "--calibrate",
        type=int,
        default=200,
        metavar="N",
        help="clean phantoms per profile to calibrate the version on first (0: uncalibrated)",
    )
    parser.add_argument(
        "--oracle",
        type=float,
        default=None,
        metavar="E",
        help="read every film by the floor's oracle (anatomy measured with relative error E)",
    )
    parser.add_argument(
        "--misses",
        action="store_true",
        help=f"list the errors of {LARGE_MONTHS} months or more that the first 2k left out",
    )
    args = parser.parse_args()
    if not (args.model / "model_card.json").exists():
        print(f"demo model: none at {args.model} (make run trains it); recall skipped")
        return
    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-recall-", dir=ROOT / "var") as tmp:
        run(Path(tmp), args)


def run(work: Path, args: argparse.Namespace) -> None:
    os.environ.update(
        PORTAL_DATA_DIR=str(work / "data"),
        DJANGO_SETTINGS_MODULE="portal.settings",
        PORTAL_QUEUE_THRESHOLD="-1",  # the whole ranking, not only the scores above 2
        # Calibrated: the residual relative to the interval (`services.outlier_score`).
        PORTAL_OUTLIER_RULE="interval" if args.calibrate else "expected_error",
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    import torch
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from inference_worker.ages import DAYS_PER_MONTH
    from inference_worker.predict import run_batch
    from inference_worker.synthetic import generate
    from portal.accounts.services import membership_grant
    from portal.celery import app as celery_app
    from portal.ingest.archive import Source
    from portal.ingest.models import Site, Upload
    from portal.ingest.selectors import upload_report
    from portal.ingest.services import site_create, upload_create, upload_process
    from portal.predictions import dispatch, services, uploads
    from portal.predictions.calibration import calibration_store
    from portal.predictions.models import Prediction
    from portal.predictions.tasks import store_results
    from portal.review.selectors import QueueFilters, queue

    call_command("migrate", verbosity=0)
    torch.set_num_threads(os.cpu_count() or 1)  # as an inference worker does
    data = work / "data"
    version = services.model_version_register(folder=args.model, activate=True)
    reviewer = get_user_model().objects.create_user("bench-reviewer")
    workers = os.cpu_count() or 1
    corrupted: set[int] = set()
    error_months: dict[int, float] = {}  # corrupted image -> |recorded - true| in months
    label_of: dict[int, dict] = {}  # corrupted image -> its manifest row (true age, slip kind)
    sent: list[dict] = []

    def capture(name: str, args: list, **options) -> None:
        sent.append((name, args))

    oracle = None if args.oracle is None else _oracle(args.oracle)

    def ingest_and_predict(
        slug: str, folder: Path, readings: dict[str, int] | None = None
    ) -> dict[str, int]:
        """A site's upload of `folder` through ingest, the prediction job it queues and the
        worker's answers (their ages replaced by `readings`, by file name, where given),
        stored; {phantom file name: image id}."""
        site = site_create(slug=slug)
        site.keep_file_names = True  # the phantoms' names map report lines to their labels
        site.save(update_fields=["keep_file_names"])
        sent.clear()
        with mock.patch.object(celery_app, "send_task", capture):
            upload = upload_process(
                upload=upload_create(site=site, source=Upload.Source.CLI),
                sources=[Source.given(folder)],
            )  # ingest hands the done upload on by task name; this is that task's body,
            uploads.upload_done(upload_id=upload.pk)  # which queues the prediction job
        jobs = [args for name, args in sent if name == services.DISPATCH_TASK]
        sent.clear()
        with mock.patch.object(celery_app, "send_task", capture):
            for job_id, round_ in jobs:
                dispatch.prediction_job_dispatch(job_id=job_id, round_=round_)
        image_of = {a["name"]: a["image"] for a in upload_report(upload=upload)["accepted"]}
        name_of = {image: name for name, image in image_of.items()}
        for _name, (payload,) in sent:
            answer = run_batch(payload, data)
            for result in answer["results"] if readings else []:
                if "age_days" in result:
                    result["age_days"] = readings[name_of[result["image"]]]
            store_results({**answer, "worker": "bench"})
        return image_of

    started = time.perf_counter()
    if args.calibrate:
        # Clean phantoms of other seeds, on sites the reviewer does not see (out of the
        # queue), as a frozen validation set would calibrate the version (issue 19, item 1).
        true_days, predicted_days, sites = [], [], []
        for index, profile in enumerate(PROFILES):
            folder = work / "calibration" / profile
            seed = CALIBRATION_SEED + index
            rows = generate(folder, args.calibrate, seed, profile, 0.0, workers)
            (folder / "manifest.csv").unlink()
            oracle_days = oracle and oracle(rows, args.calibrate, seed, profile)
            image_of = ingest_and_predict(f"{profile}-calibration", folder, oracle_days)
            readings = dict(
                Prediction.objects.filter(model_version=version, error="").values_list(
                    "image_id", "age_days"
                )
            )
            for r in rows:
                true_days.append(int(r["true_age_days"]))
                predicted_days.append(readings[image_of[r["file"]]])
                sites.append(profile)
        calibration_store(
            version=version,
            true_days=true_days,
            predicted_days=predicted_days,
            sites=sites,
            coverage=0.9,
            validation_set="bench-calibration",
            validation_set_version=1,
            manifest_sha256="0" * 64,
        )
    for index, profile in enumerate(PROFILES):
        folder = work / "phantoms" / profile
        rows = generate(folder, args.count, SEED + index, profile, args.label_noise, workers)
        (folder / "manifest.csv").unlink()
        oracle_days = oracle and oracle(rows, args.count, SEED + index, profile)
        image_of = ingest_and_predict(profile, folder, oracle_days)
        membership_grant(
            actor=None, user=reviewer, site=Site.objects.get(slug=profile), role="reviewer"
        )
        for r in rows:
            if r["label_corrupted"]:
                image = image_of[r["file"]]
                corrupted.add(image)
                label_of[image] = r
                error_months[image] = (
                    abs(int(r["recorded_age_days"]) - int(r["true_age_days"])) / DAYS_PER_MONTH
                )
    elapsed = time.perf_counter() - started

    if oracle is not None:
        print(f"readings: the floor's oracle, measuring with a relative error {args.oracle}")
    print(
        f"model {version.name} (validation MAE "
        f"{version.card['expected_error_months']['overall']:.1f} months), {args.count} phantoms "
        f"per profile, {args.label_noise:.0%} label noise, seeds {SEED} to "
        f"{SEED + len(PROFILES) - 1}, queue threshold off; "
        + (
            f"calibrated on {args.calibrate} clean phantoms per profile (seeds "
            f"{CALIBRATION_SEED} to {CALIBRATION_SEED + len(PROFILES) - 1}), interval rule"
            if args.calibrate
            else "uncalibrated (the card's expected errors)"
        )
    )
    # The triage order (the queue's), and in the same run the residual-only orders: the
    # calibrated residual (outside the interval) and the expected-error ratio of the queue
    # before issue 19 ("today").
    orders = {
        "triage": None,
        "residual, interval": lambda p: _residual_key(p, calibrated=True),
        "residual, today": lambda p: _residual_key(p, calibrated=False),
    }
    if not args.calibrate:
        del orders["residual, interval"]
    header = "".join(f" {name:>19}" for name in orders)
    print(f"{'set':<16} {'N':>5} {'k':>4}{header} {'random 2k/N':>12}")
    seen = set(version.card.get("training_data", {}).get("sites", []))
    overall: dict[str, list[int]] = {}
    overall_cases: list = []
    for name, filters in [
        *((p, QueueFilters(site=p)) for p in PROFILES),
        ("overall", QueueFilters()),
    ]:
        cases = list(queue(user=reviewer, filters=filters).select_related("image", "model_version"))
        tops = {}
        k = len(corrupted.intersection(p.image_id for p in cases))
        for order, key in orders.items():
            ranked = cases if key is None else sorted(cases, key=key, reverse=True)
            tops[order] = [p.image_id for p in ranked[: 2 * k]]
        cells = "".join(f" {len(corrupted.intersection(t)) / k:>19.2f}" for t in tops.values())
        label = name if name == "overall" or name in seen else f"{name} (unseen)"
        print(f"{label:<16} {len(cases):>5} {k:>4}{cells} {2 * k / len(cases):>12.2f}")
        if name == "overall":
            overall, overall_cases = tops, cases
    print(f"\nrecall@2k overall by error size (|recorded - true|), k = {len(corrupted)}:")
    print(f"{'error':<16} {'k':>4}{header}   goal")
    rows_out = [("all", lambda m: True, GOAL_OVERALL)]
    for low, high in SIZES:
        label = f">= {low} months" if high is None else f"{low}-{high} months"
        goal = GOAL_LARGE if high is None and low == LARGE_MONTHS else None
        rows_out.append((label, _in_size(low, high), goal))
    for label, chosen, goal in rows_out:
        subset = {i for i in corrupted if chosen(error_months[i])}
        if not subset:
            continue
        recalls = [len(subset.intersection(t)) / len(subset) for t in overall.values()]
        cells = "".join(f" {r:>19.2f}" for r in recalls)
        verdict = (
            "" if goal is None else f">= {goal:.1f}: {'met' if recalls[0] >= goal else 'NOT met'}"
        )
        print(f"{label:<16} {len(subset):>4}{cells}   {verdict}")
    if args.misses:
        _print_misses(overall_cases, corrupted, error_months, label_of)
    made = len(PROFILES) * (args.count + args.calibrate)
    print(f"({elapsed:.0f} s to make, ingest and predict {made} phantoms)")


def _print_misses(cases: list, corrupted: set[int], error_months: dict, label_of: dict) -> None:
    """The errors of LARGE_MONTHS or more below the first 2k of the whole queue (`cases`, in
    queue order): the reading and interval it had, and how many films its patient has (siblings
    are the other evidence triage weighs)."""
    from django.db.models import Count

    from inference_worker.ages import DAYS_PER_MONTH
    from portal.ingest.models import Image

    films = dict(
        Image.objects.values("patient_pseudonym")
        .annotate(n=Count("id"))
        .values_list("patient_pseudonym", "n")
    )
    cut = 2 * len(corrupted)

    def months(days: float | None) -> str:
        return "-" if days is None else f"{days / DAYS_PER_MONTH:.0f}"

    print(f"\nerrors of {LARGE_MONTHS} months or more after the first {cut} (rank from 1):")
    print(
        f"{'rank':>5} {'site':<6} {'slip':<18} {'true':>5} {'recorded':>8} {'read':>5} "
        f"{'interval':>10} {'films':>5} {'score':>6}   (ages in months)"
    )
    for rank, p in enumerate(cases, 1):
        if p.image_id not in corrupted or error_months[p.image_id] < LARGE_MONTHS or rank <= cut:
            continue
        row = label_of[p.image_id]
        interval = f"{months(p.interval_low_days)}-{months(p.interval_high_days)}"
        print(
            f"{rank:>5} {row['site']:<6} {row['corruption']:<18} "
            f"{months(int(row['true_age_days'])):>5} {months(p.image.age_days):>8} "
            f"{months(p.age_days):>5} {interval:>10} {films[p.image.patient_pseudonym]:>5} "
            f"{p.score:>6.2f}"
        )


def _oracle(error: float, train: int = 60_000):
    """A reader of phantoms by `bench/floor.py`'s oracle (trained on its own seed's children):
    (manifest rows of `generate(out, count, seed, profile)`, count, seed, profile) -> {file name:
    age in days}, from each phantom's hidden anatomy measured with the relative error `error`."""
    sys.path.insert(0, str(ROOT / "bench"))
    import torch
    from floor import ORACLE_SEED, fit_oracle, measure

    from inference_worker.ages import AGE_LIMIT_DAYS
    from inference_worker.synthetic.generator import replay

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small network: threads cost more than they give
    model = fit_oracle(replay(train, ORACLE_SEED, "north"), error)  # as bench/floor.py does
    torch.set_num_threads(threads)

    def read(rows: list[dict], count: int, seed: int, profile: str) -> dict[str, int]:
        exams = replay(count, seed, profile)
        if [d for _, d in exams] != [int(r["true_age_days"]) for r in rows]:
            raise RuntimeError(f"{profile} seed {seed}: the replay is not the manifest")
        ages = model.predict(measure(exams, error, seed=seed)).round().clip(0, AGE_LIMIT_DAYS - 1)
        return {r["file"]: int(a) for r, a in zip(rows, ages, strict=True)}

    return read


def _residual_key(prediction, *, calibrated: bool) -> tuple[float, int]:
    """A residual-only order, ties by id: |residual| over the interval's reach (`calibrated`,
    under the interval rule) or over the card's expected error, as `services.outlier_score`."""
    from portal.predictions.services import outlier_score

    interval = None
    low, high = prediction.interval_low_days, prediction.interval_high_days
    if calibrated and low is not None and high is not None:
        interval = (low, high)
    score = outlier_score(
        card=prediction.model_version.card,
        predicted_days=prediction.age_days,
        recorded_days=prediction.image.age_days,
        sex=prediction.image.sex,
        interval=interval,
    )
    return score, prediction.pk


def _in_size(low: float, high: float | None):
    return lambda months: months >= low and (high is None or months < high)


if __name__ == "__main__":
    main()
