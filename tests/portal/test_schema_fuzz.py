"""schemathesis against the portal's own OpenAPI schema on a live server: every operation gets
generated requests, valid ones and invalid ones, and must answer no 5xx, refuse invalid input
with a 4xx, and answer only what the schema documents (status code, content type, headers and
body). Bounded: a fixed seed, a few fuzzed examples per operation and mode, no shrinking.

Run it alone: `PORTAL_DATA_DIR=/tmp/fuzz .venv/bin/pytest tests/portal/test_schema_fuzz.py`."""

import base64
import hashlib
import zlib

import pytest
import schemathesis
from django.conf import settings
from django.test.testcases import QuietWSGIRequestHandler
from rest_framework.throttling import UserRateThrottle
from schemathesis.engine import events

from portal.accounts.models import Role
from portal.accounts.services import membership_grant
from portal.predictions import services as predictions
from portal.reports.services import report_create, report_finish
from portal.review.services import review_submit
from portal.validation.exports import export_run, export_start
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.portal import factories as f

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SEED = 20250611
FUZZED_EXAMPLES = 10  # per operation and generation mode, after the coverage phase's cases
MAX_SECONDS = 60
CHECKS = {
    "enabled": True,
    # A request that the schema allows can still be refused for what no schema states (a
    # correction without its age, a validation set that exists): 400 and 409 are documented
    # answers, so acceptance of every schema-valid request is not required.
    "positive_data_acceptance": {"enabled": False},
}
# Every operation of the schema is fuzzed: none logs the caller out or deletes the fixture
# data (the API has no DELETE), so nothing is excluded.


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """Started after the test database, so that it is stopped before the database is dropped
    (as tests/e2e/conftest.py does)."""
    return live_server


@pytest.fixture
def fuzzable(settings, monkeypatch) -> None:
    """The fuzzer sends hundreds of requests a minute, some with bad credentials on purpose
    (`ignored_auth`): the throttles that would answer them all 429 are raised for this test
    (their 429 is documented and tested elsewhere). Replies go out without Nagle's delay, as
    behind a production server, or each request waits 40 ms for a delayed ACK."""
    settings.LOGIN_THROTTLE = {**settings.LOGIN_THROTTLE, "MAX_FAILURES": 10**6}
    settings.LOGIN_THROTTLE["MAX_FAILURES_PER_ADDRESS"] = 10**6
    settings.LOGIN_THROTTLE["MAX_FAILURES_PER_ADDRESS_USER"] = 10**6
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": None, "anon": None})
    monkeypatch.setattr(QuietWSGIRequestHandler, "disable_nagle_algorithm", True)


@pytest.fixture
def world() -> dict:
    """A lead of two sites (and a reviewer of a third) with images, predictions with heatmaps,
    reviews, a frozen validation set with a finished export, a finished report and a job: the
    objects the generated requests hit when a path names a real one."""
    north, south, east = f.site("north"), f.site("south", double_reading=True), f.site("east")
    lead = f.user("fuzz", Role.LEAD, north, south)
    membership_grant(actor=None, user=lead, site=east, role=Role.REVIEWER)
    other = f.user("other", Role.LEAD, north, south, east)
    model, second = f.model_version("m1"), f.model_version("m2", active=False)
    images = []
    for i, age in enumerate([200, 900, 1500, 2600, 3300, 4100, 5000, 6000]):
        image = f.image((north, south, east)[i % 3], age_days=age, sex="MF"[i % 2], dicom=True)
        image.sha256 = hashlib.sha256((settings.DATA_DIR / image.file).read_bytes()).hexdigest()
        image.save(update_fields=["sha256"])
        f.prediction(image, model, age_days=age + 400 * (i % 3), heatmap=True)
        f.prediction(image, second, age_days=age + 30)
        images.append(image)
    for image in images[:4]:
        review_submit(
            image=image,
            reviewer=other,
            decision="confirm",
            age_days=None,
            reason="",
            comment="",
            expected_revision=image.revision,
        )
    chosen = validation_set_create(name="ns", sites=[north, south], user=lead)
    frozen = validation_set_freeze(validation_set=chosen, user=lead)
    export_run(export_id=export_start(version=frozen, user=lead).pk)
    report = report_create(version=frozen, model=model, compare=second, user=lead, build=False)
    report_finish(report=report)
    job = predictions.prediction_job_create(model_version=model, site=north, user=lead)
    return {
        "lead": lead,
        "path": {
            "image_id": [i.pk for i in images],
            "report_id": [report.pk],
            "fmt": ["html", "csv", "json", "pdf"],
            "name": ["ns"],
            "number": [frozen.number],
            "job_id": [job.pk],
            "upload_id": [images[0].upload_id],
            "slug": ["north", "east"],
        },
    }


def _real_path_parameters(real: dict[str, list]):
    """Positive cases name a real object half of the time (a generated id is almost always
    404); invalid cases are left as generated."""

    def hook(context, case):
        mode = case.meta.generation.mode if case.meta else None
        params = case.path_parameters or {}
        if not params or mode is None or mode.is_negative:
            return case
        pick = zlib.crc32(repr(sorted(params.items())).encode())
        if pick % 2:
            return case
        for name in params:
            if name in real:
                case.path_parameters[name] = real[name][pick // 2 % len(real[name])]
        return case

    return hook


def _fuzz_config(headers: dict) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "max-time": MAX_SECONDS,
            "headers": headers,
            "generation": {
                "mode": "all",
                "max-examples": FUZZED_EXAMPLES,
                "deterministic": True,
                "no-shrink": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                # Stateful links need `links` in the schema, which drf-spectacular does not write.
                "stateful": {"enabled": False},
            },
            "checks": CHECKS,
        }
    )


def test_every_operation_answers_what_the_schema_documents(live_server, fuzzable, world):
    token = base64.b64encode(f"fuzz:{f.PASSWORD}".encode()).decode()
    # Each request on its own connection: a kept-alive one would hold a server thread, and its
    # database session, past the test database's teardown.
    headers = {"Authorization": f"Basic {token}", "Connection": "close"}
    schema = schemathesis.openapi.from_url(
        f"{live_server.url}/api/schema/?format=json", config=_fuzz_config(headers), headers=headers
    )
    schema.hook("map_case")(_real_path_parameters(world["path"]))

    failures: dict[tuple, str] = {}
    operations, cases, stopped = set(), 0, None
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, (events.FatalError, events.NonFatalError)):
            failures[("error", getattr(event, "label", ""))] = str(
                getattr(event, "value", None) or event.exception
            )
        if isinstance(event, events.EngineFinished):
            stopped = event.stop_reason
        if not isinstance(event, events.ScenarioFinished):
            continue
        recorder = event.recorder
        operations.add(recorder.label)
        cases += len(recorder.cases)
        for checks in recorder.checks.values():
            for check in checks:
                if check.failure_info is None:
                    continue
                failure = check.failure_info.failure
                key = (recorder.label, check.name, failure.title)
                failures.setdefault(key, f"{failure.message}\n    {check.failure_info.code_sample}")
    report = "\n".join(f"{' | '.join(map(str, k))}:\n    {v}" for k, v in sorted(failures.items()))
    print(f"{len(operations)} operations, {cases} cases, stopped: {stopped}")
    assert not failures, f"{len(failures)} failures:\n{report}"
    # Every operation was reached, even when the time limit cut its fuzzing short.
    assert operations == {o.ok().label for o in schema.get_all_operations()}
