"""Review-queue recall benchmark: how many of the corrupted labels the demo model's review queue
puts first, per site profile and overall.

    python bench/queue_recall.py [--model var/models/demo] [--count 300] [--label-noise 0.08]

Phantoms of a seed the model never saw, with label noise (`north` and `south`, the profiles it
was trained on, and `east`, which it never saw), go through the portal's path in a throwaway data
folder and SQLite database: ingest, the batches the portal queues answered in this process by the
inference worker's own code (`run_batch`, the body of `inference_worker.predict_batch`), the
answers stored by the portal's own task body, and the queue ordered by `review.selectors.queue`
with no threshold. recall@2k: the share of the k corrupted labels among the first 2k entries
(random order: 2k / N).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "var" / "models" / "demo")
    parser.add_argument("--count", type=int, default=300, help="phantoms per site profile")
    parser.add_argument("--label-noise", type=float, default=0.08)
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
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    import torch
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from inference_worker.predict import run_batch
    from inference_worker.synthetic import generate
    from portal.accounts.services import membership_grant
    from portal.ingest.archive import Source
    from portal.ingest.models import Upload
    from portal.ingest.selectors import upload_report
    from portal.ingest.services import site_create, upload_create, upload_process
    from portal.predictions import dispatch, services
    from portal.predictions.tasks import store_results
    from portal.review.selectors import QueueFilters, queue

    call_command("migrate", verbosity=0)
    torch.set_num_threads(os.cpu_count() or 1)  # as an inference worker does
    data = work / "data"
    version = services.model_version_register(folder=args.model, activate=True)
    reviewer = get_user_model().objects.create_user("bench-reviewer")
    workers = os.cpu_count() or 1
    corrupted: set[int] = set()
    sent: list[dict] = []

    def capture(name: str, args: list, **options) -> None:
        sent.append((name, args))

    started = time.perf_counter()
    for index, profile in enumerate(PROFILES):
        folder = work / "phantoms" / profile
        rows = generate(folder, args.count, SEED + index, profile, args.label_noise, workers)
        (folder / "manifest.csv").unlink()
        site = site_create(slug=profile)
        site.keep_file_names = True  # the phantoms' names map report lines to their labels
        site.save(update_fields=["keep_file_names"])
        membership_grant(actor=None, user=reviewer, site=site, role="reviewer")
        sent.clear()
        with mock.patch.object(services.celery_app, "send_task", capture):
            upload = upload_process(
                upload=upload_create(site=site, source=Upload.Source.CLI),
                sources=[Source.given(folder)],
            )  # its prediction job is queued on commit (autocommit: at once)
        jobs = [args for name, args in sent if name == services.DISPATCH_TASK]
        sent.clear()
        with mock.patch.object(services.celery_app, "send_task", capture):
            for job_id, round_ in jobs:
                dispatch.prediction_job_dispatch(job_id=job_id, round_=round_)
        for _name, (payload,) in sent:
            store_results({**run_batch(payload, data), "worker": "bench"})
        image_of = {a["name"]: a["image"] for a in upload_report(upload=upload)["accepted"]}
        corrupted |= {image_of[r["file"]] for r in rows if r["label_corrupted"]}
    elapsed = time.perf_counter() - started

    print(
        f"model {version.name} (validation MAE "
        f"{version.card['expected_error_months']['overall']:.1f} months), {args.count} phantoms "
        f"per profile, {args.label_noise:.0%} label noise, seeds {SEED} to "
        f"{SEED + len(PROFILES) - 1}, queue threshold off"
    )
    print(f"{'set':<16} {'N':>5} {'k':>4} {'recall@2k':>10} {'random 2k/N':>12} {'ratio':>6}")
    seen = set(version.card.get("training_data", {}).get("sites", []))
    for name, filters in [
        *((p, QueueFilters(site=p)) for p in PROFILES),
        ("overall", QueueFilters()),
    ]:
        ranked = list(queue(user=reviewer, filters=filters).values_list("image_id", flat=True))
        k = len(corrupted.intersection(ranked))
        n = len(ranked)
        recall = len(corrupted.intersection(ranked[: 2 * k])) / k
        chance = 2 * k / n
        label = name if name == "overall" or name in seen else f"{name} (unseen)"
        print(f"{label:<16} {n:>5} {k:>4} {recall:>10.2f} {chance:>12.2f} {recall / chance:>6.2f}")
    print(f"({elapsed:.0f} s to make, ingest and predict {len(PROFILES) * args.count} phantoms)")


if __name__ == "__main__":
    main()
