"""Portal paths at the paper's scale: p50 / p95 latency and SQL queries per request of every
list endpoint and list page, on the first page and deep (after following `next` many pages in),
over 128,000 predicted images in 10 sites with reviews, audit events, uploads, jobs, validation
sets and a team.

    python bench/portal_scale.py [--images 128000] [--pages 40] [--requests 30]

Runs on SQLite (a fresh database in a throwaway data folder); with DATABASE_URL set, then on
that PostgreSQL server too, in a throwaway database named `<its name>_portal_scale` (created
for the run, dropped after it). Each database runs in a child process of its own, because the
settings read DATABASE_URL once, at import. The images and predictions are seeded by
bench/review_api.py's seeding (the same cases, COPY / executemany); the rest with bulk_create.

Requests go through Django's test client in-process, logged in as the lead of all ten sites.
The deep page is reached by following each response's `next` link (`--pages` times, at the
largest page size an endpoint takes): whatever the endpoint pages with, cursor or offset, is
what is measured. Goal: p95 under 50 ms on every page. The exit status is 0 whether or not the
goal is met (the table says), and not 0 when a request fails.
"""

import argparse
import html
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import review_api  # noqa: E402  (bench/ is not a package: its seeding is reused as a module)

GOAL_P95_MS = 50.0
# (label, path): measured at the default page size; the deep page is reached at `limit=200`
# (the largest), then measured at the default size again.
API = [
    ("images", "/api/images/"),
    ("review queue", "/api/review/queue/"),
    ("audit", "/api/audit/"),
    ("validation sets", "/api/validation-sets/"),
    ("uploads", "/api/uploads/"),
    ("jobs", "/api/jobs/"),
    ("predictions", "/api/predictions/"),
    ("sites", "/api/sites/"),
]
PAGES = [
    ("images page", "/images/"),
    ("review queue page", "/review/"),
    ("audit page", "/audit/"),
    ("validation sets page", "/validation-sets/"),
    ("uploads page", "/uploads/"),
    ("jobs page", "/jobs/"),
    ("team page", "/team/"),
]
_NEXT_LINK = re.compile(r'<a\b[^>]*\brel="next"[^>]*>')
_HREF = re.compile(r'\bhref="([^"]+)"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128_000)
    parser.add_argument("--pages", type=int, default=40, help="`next` links followed to go deep")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests, queries counted")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    passed = [a for a in sys.argv[1:] if a != "--child"]
    (ROOT / "var").mkdir(exist_ok=True)
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=ROOT / "var") as tmp:
        work = Path(tmp)
        failed |= review_api.run_child(passed, work / "sqlite", None, __file__)
        url = os.environ.get("DATABASE_URL")
        if url:
            parts = urlsplit(url)
            name = parts.path.lstrip("/") or "postgres"
            url = urlunsplit(parts._replace(path=f"/{name}_portal_scale"))
            reason = review_api.postgres_unreachable(url)
            if reason:
                sys.exit(f"postgresql at {url}: {reason}")
            with review_api.throwaway_database(url):
                failed |= review_api.run_child(passed, work / "postgres", url, __file__)
        else:
            print("\npostgresql: skipped (set DATABASE_URL to run there too)")
    sys.exit(1 if failed else 0)


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n== {connection.vendor}; load average {load} on {os.cpu_count()} CPUs ==", flush=True)
    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    world = review_api.seed(images=args.images, outliers=0.45)
    extra = seed_rest(world)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    print(
        f"seeded {args.images:,} images and predictions, {extra} in "
        f"{time.perf_counter() - start:.1f} s",
        flush=True,
    )
    rows = measure(args)
    print_table(rows, args)


def seed_rest(world: review_api.World) -> str:
    """Reviews and audit events of the reviewed images, uploads, jobs, validation sets and a
    team, with bulk_create (review_api seeds the images and predictions)."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from portal.accounts.models import AuditEvent, Membership, Role
    from portal.ingest.models import Image, Site, Upload
    from portal.predictions.models import ModelVersion, PredictionJob
    from portal.review.models import Review
    from portal.validation.models import ValidationSet

    users = get_user_model().objects
    lead = users.get(username="lead")
    sites = list(Site.objects.order_by("slug"))
    model = ModelVersion.objects.get(name="bench")
    reviewed = list(
        Image.objects.exclude(status="unreviewed")
        .order_by("id")
        .values_list("id", "site_id", "outcome", "curated_age_days", "status")
    )
    with transaction.atomic():
        Review.objects.bulk_create(
            (
                Review(
                    image_id=image_id,
                    reviewer=lead,
                    decision=outcome or "confirm",
                    kind="first_read" if status == "awaiting_second_read" else "single",
                    age_days=age if outcome == "correct" else None,
                    reason="other" if outcome == "exclude" else "",
                    comment="seeded" if outcome == "exclude" else "",
                    based_on_revision=0,
                )
                for image_id, _site, outcome, age, status in reviewed
            ),
            batch_size=4000,
        )
        AuditEvent.objects.bulk_create(
            (
                AuditEvent(
                    actor=lead,
                    actor_name="lead",
                    action=f"review.{outcome or 'confirm'}",
                    site_id=site_id,
                    image_id=image_id,
                    before={"revision": 0},
                    after={"revision": 1},
                )
                for image_id, site_id, outcome, _age, _status in reviewed
            ),
            batch_size=4000,
        )
        Upload.objects.bulk_create(
            (
                Upload(site=sites[i % len(sites)], source="api", status="done", created_by=lead)
                for i in range(2000)
            ),
            batch_size=1000,
        )
        PredictionJob.objects.bulk_create(
            (
                PredictionJob(
                    model_version=model,
                    site=sites[i % len(sites)],
                    state="done",
                    total=100,
                    done_count=100,
                )
                for i in range(2000)
            ),
            batch_size=1000,
        )
        sets = ValidationSet.objects.bulk_create(
            ValidationSet(name=f"set-{i:04d}", created_by=lead, definition={}) for i in range(300)
        )
        ValidationSet.sites.through.objects.bulk_create(
            ValidationSet.sites.through(validationset_id=s.pk, site_id=sites[i % 10].pk)
            for i, s in enumerate(sets)
        )
        team = users.bulk_create(get_user_model()(username=f"user{i:04d}") for i in range(500))
        Membership.objects.bulk_create(
            Membership(user=u, site=sites[i % len(sites)], role=Role.REVIEWER)
            for i, u in enumerate(team)
        )
    return (
        f"{len(reviewed):,} reviews and audit events, 2,000 uploads, 2,000 jobs, "
        "300 validation sets, a team of 500"
    )


@dataclass
class Row:
    label: str
    times_ms: list[float]
    queries: list[int]
    depth: str = ""
    deep_of: "Row | None" = None
    notes: list[str] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return float(np.percentile(self.times_ms, 50))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.times_ms, 95))


def _next_link(response) -> str | None:
    """The `next` of a JSON page (cursor or offset alike) or the rel="next" link of a page."""
    if response["Content-Type"].startswith("application/json"):
        data = response.json()
        return data.get("next") if isinstance(data, dict) else None
    tag = _NEXT_LINK.search(response.content.decode())
    href = _HREF.search(tag.group(0)) if tag else None
    return html.unescape(href.group(1)) if href else None


def _default_size(url: str) -> str:
    """The same page (its cursor or offset) at the endpoint's default page size."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "limit"])
    return urlunsplit(parts._replace(scheme="", netloc="", query=query))


def _rows_in(response) -> int | None:
    if not response["Content-Type"].startswith("application/json"):
        return None
    data = response.json()
    results = data.get("results") if isinstance(data, dict) else data
    return len(results) if isinstance(results, list) else None


def measure(args: argparse.Namespace) -> list[Row]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="localhost")
    client.force_login(get_user_model().objects.get(username="lead"))

    def get(url: str, query: dict | None = None):
        response = client.get(url, query or {})
        if response.status_code != 200:
            raise SystemExit(f"{url} {query or ''}: HTTP {response.status_code}")
        return response

    def timed(label: str, url: str, query: dict | None) -> Row:
        queries = []
        for _ in range(args.warmup):
            with CaptureQueriesContext(connection) as captured:
                get(url, query)
            queries.append(len(captured))
        times = []
        for _ in range(args.requests):
            start = time.perf_counter()
            get(url, query)
            times.append((time.perf_counter() - start) * 1000)
        row = Row(label, times, queries)
        print(f"  {label}: p50 {row.p50:.1f} ms, p95 {row.p95:.1f} ms", flush=True)
        return row

    rows: list[Row] = []
    for label, path in API + PAGES:
        if client.get(path).status_code == 404:
            print(f"  {label}: {path} does not exist here, skipped", flush=True)
            continue
        first = timed(f"{label} (page 1)", path, None)
        rows.append(first)
        is_api = path.startswith("/api/")
        url, pages, seen = path, 0, 0
        response = get(path, {"limit": "200"} if is_api else None)
        while pages < args.pages:
            link = _next_link(response)
            if not link:
                break
            url = link
            response = get(url)
            pages += 1
            seen += _rows_in(response) or 0
        if pages == 0:
            first.notes.append("a single page (no `next`)")
            continue
        deep = timed(f"{label} (page {pages + 1})", _default_size(url), None)
        deep.deep_of = first
        deep.depth = f"{seen:,} rows in" if seen else f"{pages} pages in"
        if pages < args.pages:
            deep.notes.append(f"the last page ({pages + 1} pages)")
        rows.append(deep)
    return rows


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    width = max(len(r.label) for r in rows) + 2
    print(
        f"\n{'list':<{width}}{'depth':>14}{'p50 ms':>8}{'p95 ms':>8}{'queries':>9}{'p95<50ms':>10}"
    )
    for r in rows:
        low, high = min(r.queries), max(r.queries)
        queries = str(low) if low == high else f"{low}-{high}"
        print(
            f"{r.label:<{width}}{r.depth:>14}{r.p50:>8.1f}{r.p95:>8.1f}{queries:>9}"
            f"{'yes' if r.p95 < GOAL_P95_MS else 'NO':>10}"
        )
    for r in rows:
        if r.deep_of is not None and set(r.queries) != set(r.deep_of.queries):
            r.notes.append(f"queries differ from page 1 ({min(r.deep_of.queries)})")
        for note in r.notes:
            print(f"  {r.label}: {note}")
    print(
        f"timed requests per page: {args.requests}, after {args.warmup} warm-up ones whose "
        f"queries are counted; deep: after following `next` up to {args.pages} times.\n"
        f"goal: p95 < {GOAL_P95_MS:g} ms"
    )
    missed = [r.label for r in rows if r.p95 >= GOAL_P95_MS]
    print("every list meets the goal" if not missed else f"missed: {'; '.join(missed)}")


if __name__ == "__main__":
    main()
