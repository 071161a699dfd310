"""Review API benchmark: latency and SQL queries per request of the outlier queue, the image
list, taking the next case and the image detail, over 128,000 predicted images (the paper's scale).

    python bench/review_api.py [--images 128000] [--requests 40] [--deep 50000]
                               [--postgres URL | --sqlite-only] [--explain]

Runs on SQLite (a fresh database in a throwaway data folder), then on PostgreSQL: at --postgres
URL, else $BENCH_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/bench_review when a
server answers there (skipped with a note when none does). The database named in the URL is
created for the run and dropped after it. Each database runs in a child process of its own,
because the settings read DATABASE_URL once, at import.

Requests go through Django's test client in-process (no HTTP server, no network; the database
connection stays open between requests), logged in as a reviewer of all ten sites. Goals: p95
under 50 ms; as many queries on a deep page as on the first. The exit status is 0 whether or not
the goals are met (the table says), and not 0 when a request fails.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from inference_worker.ages import AGE_GROUPS, REPORTED_SEXES, group_name  # noqa: E402

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/bench_review"
GOAL_P95_MS = 50.0
SITES = 10
# Expected absolute error of the model by age group and sex, in months (the card's
# `expected_error_months`); the error grows with age, as in Li et al. 2025.
CARD = {
    "expected_error_months": {
        "overall": 8.5,
        **{
            f"{group_name(*group)} {sex}": months * (0.95 if sex == "F" else 1.0)
            for group, months in zip(AGE_GROUPS, (1.6, 3.8, 6.5, 10.0, 13.5), strict=True)
            for sex in REPORTED_SEXES
        },
    }
}
# Review state of the seeded images (the rest are unreviewed). Awaiting a second read happens
# only on the double-reading sites; there the first reader is the lead.
STATUS_MIX = {"confirmed": 0.04, "corrected": 0.02, "excluded": 0.015, "awaiting_second_read": 0.1}
DOUBLE_READING = 2  # sites 0 and 1 read each case twice


# ---------------------------------------------------------------------------------------------
# Parent: one child process per database.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128_000)
    parser.add_argument(
        "--outliers",
        type=float,
        default=0.45,
        help="fraction of images drawn above the queue threshold (deep enough for --deep)",
    )
    parser.add_argument("--requests", type=int, default=40, help="timed requests per endpoint")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests (queries counted)")
    parser.add_argument(
        "--budget", type=float, default=30, help="seconds of timed requests per endpoint, at most"
    )
    parser.add_argument("--deep", type=int, default=50_000, help="rows before the deep page")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server and database name")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgres-only", action="store_true")
    parser.add_argument(
        "--explain", action="store_true", help="print the plan of each slow endpoint's query"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    passed = [a for a in sys.argv[1:] if a not in ("--sqlite-only", "--postgres-only")]
    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-review-", dir=ROOT / "var") as tmp:
        work = Path(tmp)
        failed = False
        if not args.postgres_only:
            failed |= run_child(passed, work / "sqlite", database_url=None)
        if not args.sqlite_only:
            explicit = args.postgres or os.environ.get("BENCH_DATABASE_URL")
            url = explicit or DEFAULT_POSTGRES
            reason = postgres_unreachable(url)
            if reason and explicit:
                sys.exit(f"postgresql at {url}: {reason}")
            if reason:
                print(f"\npostgresql: skipped, nothing answers at {url} ({reason});")
                print("  give --postgres URL or BENCH_DATABASE_URL to run there")
            else:
                with throwaway_database(url):
                    failed |= run_child(passed, work / "postgres", database_url=url)
    sys.exit(1 if failed else 0)


def run_child(
    passed: list[str], data_dir: Path, database_url: str | None, script: str = __file__
) -> bool:
    """Run `script --child` with its own data directory and database; True when it failed."""
    env = dict(os.environ, PORTAL_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="portal.settings")
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    env.setdefault("PORTAL_LOG_LEVEL", "WARNING")
    done = subprocess.run([sys.executable, script, *passed, "--child"], env=env, cwd=ROOT)
    return done.returncode != 0


def _maintenance(url: str):
    import psycopg

    return psycopg.connect(url, dbname="postgres", autocommit=True, connect_timeout=5)


def postgres_unreachable(url: str) -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        _maintenance(url).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


class throwaway_database:
    """CREATE the URL's database (dropping a leftover of an earlier run) and DROP it after."""

    def __init__(self, url: str) -> None:
        from psycopg import sql

        name = urlsplit(url).path.lstrip("/")
        if not name or name == "postgres":
            sys.exit(f"{url}: name a throwaway database (it is dropped at the end)")
        self.url, self.name = url, sql.Identifier(name)

    def _run(self, statement: str) -> None:
        from psycopg import sql

        with _maintenance(self.url) as conn:
            conn.execute(sql.SQL(statement).format(self.name))

    def __enter__(self) -> None:
        self._run("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        self._run("CREATE DATABASE {}")

    def __exit__(self, *exc) -> None:
        self._run("DROP DATABASE IF EXISTS {} WITH (FORCE)")


# ---------------------------------------------------------------------------------------------
# Child: seed, then measure, on the database its environment names.


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    vendor = connection.vendor
    if vendor == "postgresql":
        connection.ensure_connection()
        version = f"{connection.pg_version // 10000}.{connection.pg_version % 10000}"
    else:
        version = ".".join(map(str, connection.Database.sqlite_version_info))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n== {vendor} {version}; load average {load} on {os.cpu_count()} CPUs ==", flush=True)
    start = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"migrate: {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    world = seed(images=args.images, outliers=args.outliers)
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # as autovacuum would, some time after a large load
    seeded_s = time.perf_counter() - start
    print(
        f"seeded {args.images:,} images and predictions in {seeded_s:.1f} s "
        f"({world.above:.1%} above the queue threshold {world.threshold:g}; "
        f"statuses: {world.statuses})",
        flush=True,
    )
    rows = measure(world, args)
    print_table(rows, args)
    if args.explain:
        explain(rows)


@dataclass
class World:
    reviewer: object
    image_ids: list[int]
    sites: list[str]
    threshold: float
    above: float
    statuses: str


def seed(*, images: int, outliers: float, batch: int = 8000) -> World:
    """Sites, uploads, users, one active model version and `images` predicted images (no DICOM
    files: the endpoints measured never open one)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management.color import no_style
    from django.db import connection, transaction

    from portal.accounts.models import Role
    from portal.accounts.services import membership_grant
    from portal.ingest.models import Image, Site, Upload
    from portal.predictions.models import ModelVersion, Prediction
    from portal.predictions.services import outlier_score

    threshold = settings.REVIEW["QUEUE_THRESHOLD"]
    users = get_user_model().objects
    with transaction.atomic():
        Site.objects.bulk_create(
            Site(slug=f"site-{i:02d}", name=f"Hospital {i}", double_reading=i < DOUBLE_READING)
            for i in range(SITES)
        )
        sites = list(Site.objects.order_by("slug"))
        reviewer, lead = users.create_user("reviewer"), users.create_user("lead")
        for site in sites:
            membership_grant(actor=None, user=reviewer, site=site, role=Role.REVIEWER)
            membership_grant(actor=None, user=lead, site=site, role=Role.LEAD)
        Upload.objects.bulk_create(
            Upload(site=s, source=Upload.Source.API, status=Upload.Status.DONE) for s in sites
        )
        upload_of = {u.site_id: u.pk for u in Upload.objects.all()}
        version = ModelVersion.objects.create(
            name="bench",
            architecture="ca_resnet50",
            input_size=512,
            path="models/bench",
            sha256="0" * 64,
            card=CARD,
            is_active=True,
        )

    cases = draw_cases(images, outliers)
    above = 0
    with transaction.atomic():
        for first in range(0, images, batch):
            image_rows, prediction_rows = [], []
            for i in range(first, min(first + batch, images)):
                case = {key: values[i] for key, values in cases.items()}
                site = sites[case["site"]]
                image_rows.append(_image_row(i, site, upload_of[site.pk], case, lead.pk))
                score = outlier_score(
                    card=CARD,
                    predicted_days=case["predicted"],
                    recorded_days=case["age"],
                    sex=case["sex"],
                )
                above += score > threshold
                prediction_rows.append(
                    {
                        "id": i + 1,
                        "image_id": i + 1,
                        "site_id": site.pk,
                        "model_version_id": version.pk,
                        "age_days": case["predicted"],
                        "residual_days": case["predicted"] - case["age"],
                        "score": score,
                        "heatmap": f"heatmaps/bench/{i + 1}.png",
                    }
                )
            insert(Image, image_rows)
            insert(
                Prediction,
                prediction_rows,
                timing_ms={"load": 40.0, "preprocess": 12.0, "predict": 95.0},
                worker="inference@bench",
            )
    # Explicit ids: move PostgreSQL's sequences past them (SQLite's AUTOINCREMENT follows).
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), [Image, Prediction]):
            cursor.execute(statement)
    values, counts = np.unique(cases["status"], return_counts=True)
    mix = ", ".join(
        f"{v} {c / images:.1%}" for c, v in sorted(zip(counts, values, strict=True), reverse=True)
    )
    return World(
        reviewer=reviewer,
        image_ids=list(range(1, images + 1)),
        sites=[s.slug for s in sites],
        threshold=threshold,
        above=above / images,
        statuses=mix,
    )


def draw_cases(images: int, outliers: float) -> dict[str, list]:
    """Site, sex, recorded and predicted age and review status of every image."""
    from inference_worker.ages import AGE_LIMIT_DAYS, DAYS_PER_MONTH, age_group

    rng = np.random.default_rng(2025)
    site = rng.integers(0, SITES, images)
    sex = rng.choice(np.array(["M", "F", "O"]), images, p=[0.51, 0.485, 0.005])
    age = rng.integers(0, AGE_LIMIT_DAYS, images)
    expected = CARD["expected_error_months"]
    months = np.array(
        [
            expected.get(f"{age_group(int(a))} {s}", expected["overall"])
            for a, s in zip(age, sex, strict=True)
        ]
    )
    # Residuals: inliers within 1.9 expected errors, outliers beyond 2.1, pointed away from the
    # ends of the age range so that clipping does not pull them back in.
    is_outlier = rng.random(images) < outliers
    errors = np.where(is_outlier, 2.1 + rng.exponential(1.2, images), rng.uniform(0, 1.9, images))
    size = errors * months * DAYS_PER_MONTH
    sign = rng.choice([-1, 1], images)
    sign = np.where(age - size < 0, 1, np.where(age + size >= AGE_LIMIT_DAYS, -1, sign))
    predicted = np.clip(age + sign * np.round(size), 0, AGE_LIMIT_DAYS - 1).astype(int)

    status = np.full(images, "unreviewed", dtype=object)
    draw, low = rng.random(images), 0.0
    for name, share in STATUS_MIX.items():
        status[(draw >= low) & (draw < low + share)] = name
        low += share
    status[(status == "awaiting_second_read") & (site >= DOUBLE_READING)] = "unreviewed"
    return {
        "site": site.tolist(),
        "sex": sex.tolist(),
        "age": age.tolist(),
        "predicted": predicted.tolist(),
        "status": status.tolist(),
        "size_bytes": rng.integers(2_000_000, 12_000_000, images).tolist(),
    }


_DECISION_OF = {"confirmed": "confirm", "corrected": "correct", "excluded": "exclude"}


def _image_row(i: int, site, upload_id: int, case: dict, lead_id: int) -> dict:
    image_uuid = uuid.uuid4()
    patient = i // 3  # about three films per child
    decision = _DECISION_OF.get(case["status"], "")
    return {
        "id": i + 1,
        "uuid": image_uuid,
        "site_id": site.pk,
        "upload_id": upload_id,
        "file": f"images/{site.slug}/{image_uuid}.dcm",
        "size_bytes": case["size_bytes"],
        "sha256": f"{i:064x}",
        "sop_instance_uid": f"2.25.{image_uuid.int}",
        "study_instance_uid": f"2.25.{patient}{i % 7}",
        "series_instance_uid": f"2.25.{patient}{i % 7}1",
        "patient_pseudonym": f"{patient:032x}",
        "sex": case["sex"],
        "age_days": case["age"],
        "age_source": "birthdate" if i % 10 else "patient_age",
        "age_resolution_days": 1 if i % 10 else 30,
        "modality": "DX" if i % 3 else "CR",
        "view_position": "PA" if i % 4 else "AP",
        "rows": 2500 + i % 500,
        "columns": 2048 + i % 400,
        "photometric_interpretation": "MONOCHROME2" if i % 5 else "MONOCHROME1",
        "manufacturer": ("Carestream", "Siemens", "Philips", "GE")[i % 4],
        "burned_in_annotation": i % 50 == 0,
        "status": case["status"],
        "outcome": decision,
        "curated_age_days": {"confirm": case["age"], "correct": case["predicted"]}.get(decision),
        "revision": 0 if case["status"] == "unreviewed" else 1,
        "first_reader_id": lead_id if case["status"] == "awaiting_second_read" else None,
    }


_SAME = {
    "pixel_spacing_mm": [0.139, 0.139],
    "bits_stored": 12,
    "transfer_syntax_uid": "1.2.840.10008.1.2.1",
}
_PREPARED = {"UUIDField", "JSONField", "DateTimeField", "DateField", "DecimalField"}


def insert(model, rows: list[dict], **same) -> None:
    """Write `rows` into every column of `model`: COPY on PostgreSQL, one executemany on SQLite.
    bulk_create compiles each value through the ORM, which at this scale takes minutes on two
    cores; here each field prepares only what needs it (UUIDs per row; JSON, dates and
    defaults once)."""
    from django.db import connection
    from django.utils import timezone

    now, same = timezone.now(), {**_SAME, **same}
    fields = model._meta.concrete_fields
    given = [f for f in fields if f.attname in rows[0]]
    fixed = {}
    for f in fields:
        if f.attname in rows[0]:
            continue
        value = same.get(f.attname, now if getattr(f, "auto_now_add", False) else f.get_default())
        fixed[f.attname] = f.get_db_prep_save(value, connection)
    prepare = [
        (f.attname, f.get_internal_type() in _PREPARED and f.get_db_prep_save) for f in given
    ]
    columns = [f.column for f in given] + [model._meta.get_field(a).column for a in fixed]
    tail = tuple(fixed.values())
    values = [
        tuple(p(row[a], connection) if p else row[a] for a, p in prepare) + tail for row in rows
    ]
    quote = connection.ops.quote_name
    # Table and column names come from the model, quoted; every value is a parameter.
    table, names = quote(model._meta.db_table), ", ".join(map(quote, columns))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)  # noqa: S608


# ---------------------------------------------------------------------------------------------
# Measuring.


@dataclass
class Row:
    endpoint: str
    times_ms: list[float]
    queries: list[int]
    sql_ms: float  # time in the database per request (median of the warm-up requests)
    slowest_sql: str  # the slowest query of the warm-up requests, and its parameters
    slowest_params: object
    note: str = ""
    deep_of: "Row | None" = None

    @property
    def p50(self) -> float:
        return float(np.percentile(self.times_ms, 50))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.times_ms, 95))

    @property
    def steady(self) -> list[int]:
        """Queries per request after the first (which may set something up: a first lease
        has no earlier one to release)."""
        return self.queries[1:] or self.queries

    @property
    def constant(self) -> bool:
        """The same count on every request, and on a deep page the count of the first page."""
        same = min(self.steady) == max(self.steady)
        if self.deep_of is not None:
            same = same and set(self.steady) == set(self.deep_of.steady)
        return same

    @property
    def meets(self) -> bool:
        return self.p95 < GOAL_P95_MS and self.constant


class QueryTimer:
    """An execute wrapper that times each query (CaptureQueriesContext keeps whole ms only)."""

    def __init__(self) -> None:
        self.spent: list[tuple[float, str, object]] = []

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.spent.append(((time.perf_counter() - start) * 1000, sql, params))


def timed(client, label: str, request, args) -> Row:
    """Warm-up requests with their queries counted and timed, then timed requests without
    either (that bookkeeping stays out of the latency), for at most --budget seconds."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queries, timers = [], []
    for i in range(max(args.warmup, 1)):
        timers.append(QueryTimer())
        with connection.execute_wrapper(timers[-1]), CaptureQueriesContext(connection) as captured:
            response = request(client, i)
        queries.append(len(captured))
        if "results" in response.json() and not response.json()["results"]:
            raise SystemExit(f"{label}: an empty page")
    times: list[float] = []
    deadline = time.perf_counter() + args.budget
    for i in range(args.requests):
        if len(times) >= 10 and time.perf_counter() > deadline:
            break
        start = time.perf_counter()
        request(client, args.warmup + i)
        times.append((time.perf_counter() - start) * 1000)
    print(f"  {label}: p50 {np.percentile(times, 50):.1f} ms", flush=True)
    # The slowest query: by its median time over the warm-up requests after the first, which
    # run the same queries in the same order.
    steady = [t.spent for t in timers[1:] if len(t.spent) == len(timers[-1].spent)] or [
        timers[-1].spent
    ]
    per_query = np.median([[ms for ms, _, _ in spent] for spent in steady], axis=0)
    _, sql, params = timers[-1].spent[int(np.argmax(per_query))]
    sql_ms = float(np.median([sum(ms for ms, _, _ in spent) for spent in steady]))
    return Row(label, times, queries, sql_ms, sql, params)


def _ok(response, status: int = 200):
    if response.status_code != status:
        raise SystemExit(f"{response.request['PATH_INFO']}: HTTP {response.status_code}")
    return response


def measure(world: World, args: argparse.Namespace) -> list[Row]:
    from django.test import Client

    from portal.core.pagination import _encode
    from portal.ingest.models import ReviewStatus
    from portal.review import selectors

    # `localhost` is in ALLOWED_HOSTS; the test client's default `testserver` is not.
    client = Client(HTTP_HOST="localhost")
    client.force_login(world.reviewer)
    site = world.sites[3]  # a single-reading site
    rows: list[Row] = []

    def get(path: str, params: dict | None = None):
        def request(c, _i):
            return _ok(c.get(path, params or {}))

        return request

    def add(label: str, request, deep_of: Row | None = None, note: str = "") -> Row:
        row = timed(client, label, request, args)
        row.deep_of, row.note = deep_of, note
        rows.append(row)
        return row

    # The queue: first page, filtered first page, and the page after `--deep` rows; the
    # cursor is built from the sort key (score, id) of the last row before it.
    queue = selectors.queue(user=world.reviewer, filters=selectors.QueueFilters())
    depth = queue.count()
    deep = min(args.deep, depth - 1)
    score, prediction_id = queue.values_list("score", "id")[deep - 1]
    first = add("GET review/queue/", get("/api/review/queue/"))
    for params in ({"site": site, "sex": "F"}, {"site": site}, {"sex": "F"}):
        query = "&".join(k if k == "site" else f"{k}={v}" for k, v in params.items())
        add(f"GET review/queue/ ?{query}", get("/api/review/queue/", params))
    add(
        f"GET review/queue/ {deep:,} deep",
        get("/api/review/queue/", {"cursor": _encode([score, prediction_id], True)}),
        deep_of=first,
        note=f"the queue holds {depth:,} cases"
        + ("" if deep == args.deep else f", fewer than {args.deep:,}: {deep:,} deep instead"),
    )

    # The image list: one site's unreviewed, predicted images (first page and 90% down),
    # and every image (first page and `--deep` rows down).
    filters = {"site": site, "status": ReviewStatus.UNREVIEWED, "has_prediction": "true"}
    listed = selectors.image_list(
        user=world.reviewer,
        filters=selectors.ImageFilters.from_query(filters),
    ).values_list("id", flat=True)
    matching = listed.count()
    site_deep = matching * 9 // 10
    first = add("GET images/ ?site&status&has_pred", get("/api/images/", filters))
    add(
        f"GET images/ ?site&status&has_pred {site_deep:,} deep",
        get("/api/images/", {**filters, "cursor": _encode([listed[site_deep - 1]], True)}),
        deep_of=first,
        note=f"{matching:,} images match; the deep page is 90% down",
    )
    every = min(args.deep, len(world.image_ids) - 1)
    first = add("GET images/", get("/api/images/"))
    add(
        f"GET images/ {every:,} deep",
        get("/api/images/", {"cursor": _encode([world.image_ids[every - 1]], True)}),
        deep_of=first,
    )

    # Taking the next case: each call leases a case and releases the one held before (with no
    # decisions in between, the calls alternate between the two top cases).
    def take_next(c, _i):
        return _ok(c.post("/api/review/queue/next/"))

    add("POST review/queue/next/", take_next)

    # The detail of random images (each view is also an audit event).
    picks = np.random.default_rng(7).choice(world.image_ids, args.warmup + args.requests)

    def detail(c, i):
        return _ok(c.get(f"/api/images/{picks[i]}/"))

    add("GET images/<id>/", detail)
    return rows


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    width = max(len(r.endpoint) for r in rows) + 2
    print(
        f"\n{'endpoint':<{width}}{'n':>4}{'p50 ms':>8}{'p95 ms':>8}{'sql ms':>8}{'queries':>9}"
        f"{'p95<50ms':>10}{'queries const':>15}"
    )
    for r in rows:
        low, high = min(r.steady), max(r.steady)
        queries = str(low) if low == high else f"{low}-{high}"
        print(
            f"{r.endpoint:<{width}}{len(r.times_ms):>4}{r.p50:>8.1f}{r.p95:>8.1f}{r.sql_ms:>8.1f}"
            f"{queries:>9}"
            f"{'yes' if r.p95 < GOAL_P95_MS else 'NO':>10}{'yes' if r.constant else 'NO':>15}"
        )
    for r in rows:
        if r.queries[0] not in r.steady:
            r.note = "; ".join(filter(None, [r.note, f"{r.queries[0]} queries on the first"]))
        if r.note:
            print(f"  {r.endpoint}: {r.note}")
    print(
        f"n: timed requests per endpoint (at most {args.requests}, or {args.budget:g} s), after "
        f"{args.warmup} warm-up ones whose queries are counted (from the second on); sql ms: "
        "the time in the database per request (median of the warm-up requests).\n"
        f"goals: p95 < {GOAL_P95_MS:g} ms; the same number of queries on every request, and on "
        "a deep page as on the first"
    )
    missed = [r.endpoint for r in rows if not r.meets]
    print("all endpoints meet the goals" if not missed else f"missed: {'; '.join(missed)}")


def explain(rows: list[Row]) -> None:
    """The plan of the slowest query of each endpoint that misses the latency goal."""
    from django.db import connection

    prefix = "EXPLAIN ANALYZE " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    for r in rows:
        if r.p95 < GOAL_P95_MS or not r.slowest_sql.lstrip().upper().startswith("SELECT"):
            continue
        sql = re.sub(r"^SELECT .*? FROM ", "SELECT ... FROM ", r.slowest_sql, count=1)
        print(f"\n-- {r.endpoint}: slowest query\n{sql}\n-- {r.slowest_params}")
        with connection.cursor() as cursor:
            cursor.execute(prefix + r.slowest_sql, r.slowest_params)
            for line in cursor.fetchall():
                print("  " + " ".join(str(part) for part in line))


if __name__ == "__main__":
    main()
