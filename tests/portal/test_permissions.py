"""The permission matrix, generated from the URL conf: every URL x anonymous / uploader /
reviewer / lead / superuser x own site / other site. A URL without a rule here fails the build.

The users hold their role on `north`; `south` is another site with the same kinds of objects.
Another site's object answers 404 (as if it did not exist); lists leave it out. The superuser
holds no role anywhere and acts as a lead on every site: both sites' objects answer as the
lead's own do, and lists show both sites.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from portal.accounts.models import Membership
from portal.learning.models import TrainingJob
from portal.predictions.models import PredictionJob
from portal.reports.models import Report
from portal.reports.services import report_finish
from portal.review.services import review_submit
from portal.validation.models import ValidationExport
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.dicom_files import make_dicom
from tests.portal import factories as f

ROLES = ("anonymous", "uploader", "reviewer", "lead", "superuser")
SITE_ROLES = ("uploader", "reviewer", "lead")
# The only pages that need no login; the demo model's training status is what the login page's
# banner shows, and names nothing of any site.
PUBLIC = {"login", "logout", "api-demo-model-status"}


def url_names() -> list[str]:
    """Every named URL outside the admin (the admin is checked below as one area)."""
    names: list[str] = []

    def walk(patterns, namespace: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace == "admin":
                    continue
                walk(p.url_patterns, f"{p.namespace}:" if p.namespace else namespace)
            elif isinstance(p, URLPattern) and p.name:
                names.append(namespace + p.name)

    walk(get_resolver().url_patterns, "")
    return sorted(set(names))


@dataclass
class World:
    sites: dict
    users: dict
    objects: dict = field(default_factory=dict)  # site key -> {"upload": ..., "image": ...}

    def of(self, scope: str) -> dict:
        return self.objects[scope]


def build_world(tmp_path) -> World:
    north, south = f.site("north"), f.site("south")
    version = f.model_version(card={"expected_error_months": {"overall": 1.0}})
    users = {role: f.user(role, role, north) for role in SITE_ROLES}
    users["superuser"] = get_user_model().objects.create_superuser("superuser", password="x")
    world = World(sites={"own": north, "other": south}, users=users)
    for scope, site in world.sites.items():
        image = f.image(site, age_days=2000, dicom=True)
        prediction = f.prediction(image, version, age_days=2600, heatmap=True)
        member = f.user(f"member-{site.slug}", "reviewer", site)
        frozen = _frozen_set(site, version)
        world.objects[scope] = {
            **frozen,
            "site": site,
            "image": image,
            "prediction": prediction,
            "upload": image.upload,
            "job": PredictionJob.objects.create(model_version=version, site=site, total=1),
            "membership": Membership.objects.get(user=member, site=site),
        }
    dicom = make_dicom(tmp_path / "a.dcm")
    world.objects["dicom_bytes"] = dicom.read_bytes()
    return world


def _frozen_set(site, version) -> dict:
    """A confirmed image in a frozen set of the site, with a finished export and report."""
    image = f.image(site, age_days=3000)
    f.prediction(image, version, age_days=3100)
    review_submit(
        image=image,
        reviewer=f.user(f"lead-{site.slug}", "lead", site),
        decision="confirm",
        age_days=None,
        reason="",
        comment="",
        expected_revision=0,
    )
    chosen = validation_set_create(name=f"set-{site.slug}", sites=[site])
    frozen = validation_set_freeze(validation_set=chosen)
    export = ValidationExport.objects.create(
        version=frozen, state="done", file=f"exports/set-{site.slug}-v1.zip", total=1, done=1
    )
    path = Path(settings.DATA_DIR) / export.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty ZIP
    report = Report.objects.create(
        version=frozen, model_version=version, age_groups=[[0, 18]], resamples=10
    )
    report = report_finish(report=report)
    training_job = TrainingJob.objects.create(
        name=f"tuned-{site.slug}",
        mode=TrainingJob.Mode.RECALIBRATE,
        parent=version,
        site=site,
        provenance={"validation_sets": [{"name": chosen.name, "version": 1}]},
    )
    training_job.set_versions.set([frozen])
    return {"set": chosen, "report": report, "training_job": training_job}


@dataclass
class Rule:
    """Expected status per role on the own site (the superuser: the lead's, on both sites,
    unless `expect` names it); `other` is what the other site's object gives (404) or
    "absent" for lists (the other site's data must not show) or "same" where no site is
    involved. `lists_sites`: the superuser's list shows both sites' data."""

    method: str
    path: Callable[[dict], str]
    expect: dict
    other: int | str = 404
    body: Callable[[World], dict] | None = None
    multipart: bool = False
    lists_sites: bool = True


ANY = {"uploader": 200, "reviewer": 200, "lead": 200}
UPLOADERS = {"uploader": 200, "reviewer": 403, "lead": 200}
REVIEWERS = {"uploader": 403, "reviewer": 200, "lead": 200}
LEADS = {"uploader": 403, "reviewer": 403, "lead": 200}


def _with(expect: dict, **overrides) -> dict:
    return {**expect, **overrides}


def _dicom_files(world: World) -> dict:
    data = world.objects["dicom_bytes"]
    return {"files": [SimpleUploadedFile("a.dcm", data)], "finish": "false"}


def _study_path(o: dict) -> str:
    return f"/dicomweb/studies/{o['image'].study_instance_uid}"


def _series_path(o: dict) -> str:
    return f"{_study_path(o)}/series/{o['image'].series_instance_uid}"


def _instance_path(o: dict) -> str:
    return o["image"].wado_rs_path


RULES: dict[str, list[Rule]] = {
    # DICOMweb names no site in its answers: scoping is proven by tests/portal/pacs.
    "dicomweb:studies": [
        Rule("get", lambda o: "/dicomweb/studies", ANY, "absent", lists_sites=False)
    ],
    "dicomweb:series": [
        Rule("get", lambda o: "/dicomweb/series", ANY, "absent", lists_sites=False)
    ],
    "dicomweb:instances": [
        Rule("get", lambda o: "/dicomweb/instances", ANY, "absent", lists_sites=False)
    ],
    "dicomweb:study": [
        Rule("get", lambda o: f"/dicomweb/studies/{o['image'].study_instance_uid}", ANY)
    ],
    "dicomweb:instance": [Rule("get", _instance_path, ANY)],
    "dicomweb:instance-metadata": [Rule("get", lambda o: _instance_path(o) + "/metadata", ANY)],
    "dicomweb:frames": [Rule("get", lambda o: _instance_path(o) + "/frames/1", ANY)],
    "dicomweb:rendered": [Rule("get", lambda o: _instance_path(o) + "/rendered", ANY)],
    "dicomweb:frames-rendered": [
        Rule("get", lambda o: _instance_path(o) + "/frames/1/rendered", ANY)
    ],
    "dicomweb:study-metadata": [Rule("get", lambda o: _study_path(o) + "/metadata", ANY)],
    "dicomweb:series-retrieve": [Rule("get", _series_path, ANY)],
    "dicomweb:series-metadata": [Rule("get", lambda o: _series_path(o) + "/metadata", ANY)],
    # Searches under a study or series: another site's answers an empty list, not 404.
    "dicomweb:study-series": [
        Rule("get", lambda o: _study_path(o) + "/series", ANY, "absent", lists_sites=False)
    ],
    "dicomweb:study-instances": [
        Rule("get", lambda o: _study_path(o) + "/instances", ANY, "absent", lists_sites=False)
    ],
    "dicomweb:series-instances": [
        Rule("get", lambda o: _series_path(o) + "/instances", ANY, "absent", lists_sites=False)
    ],
    "home": [Rule("get", lambda o: "/", ANY, "absent")],
    "schema": [Rule("get", lambda o: "/api/schema/", ANY, "same")],
    "api-docs": [Rule("get", lambda o: "/api/docs/", ANY, "same")],
    "ingest:upload-list": [Rule("get", lambda o: "/uploads/", ANY, "absent")],
    "ingest:upload-new": [Rule("get", lambda o: "/uploads/new/", UPLOADERS, "absent")],
    "ingest:upload-detail": [Rule("get", lambda o: f"/uploads/{o['upload'].pk}/", ANY)],
    # The page's jobs come from the API (below); the page itself names no site.
    "predictions:job-list": [Rule("get", lambda o: "/jobs/", ANY, "absent", lists_sites=False)],
    "review:image-list": [Rule("get", lambda o: "/images/", ANY, "absent")],
    "review:image": [Rule("get", lambda o: f"/images/{o['image'].pk}/", ANY)],
    "review:queue": [Rule("get", lambda o: "/review/", REVIEWERS, "absent")],
    "review:queue-next": [
        Rule("post", lambda o: "/review/next/", _with(REVIEWERS, reviewer=302, lead=302), "same")
    ],
    "review:audit": [Rule("get", lambda o: "/audit/", LEADS, "absent")],
    # No dispute in this world: the superuser's list has nothing of south's to show.
    "review:disputes": [
        Rule("get", lambda o: "/review/disputes/", LEADS, "absent", lists_sites=False)
    ],
    "review:site-blind-reading": [
        Rule(
            "post",
            lambda o: f"/review/sites/{o['site'].slug}/blind-reading/",
            _with(LEADS, lead=302),
            body=lambda w: {"blind_reading": "on"},
            multipart=True,
        )
    ],
    "accounts:team": [Rule("get", lambda o: "/team/", LEADS, "absent")],
    "accounts:revoke": [
        Rule("post", lambda o: f"/team/{o['membership'].pk}/revoke/", _with(LEADS, lead=302))
    ],
    "api-sites": [Rule("get", lambda o: "/api/sites/", ANY, "absent")],
    "api-upload-create": [
        Rule(
            "post",
            lambda o: f"/api/sites/{o['site'].slug}/uploads/",
            _with(UPLOADERS, uploader=201, lead=201),
            body=_dicom_files,
            multipart=True,
        )
    ],
    "api-uploads": [Rule("get", lambda o: "/api/uploads/", ANY, "absent")],
    "api-upload-detail": [Rule("get", lambda o: f"/api/uploads/{o['upload'].pk}/", ANY)],
    "api-upload-files": [
        Rule("get", lambda o: f"/api/uploads/{o['upload'].pk}/files/", ANY),
        Rule(
            "post",
            lambda o: f"/api/uploads/{o['upload'].pk}/files/",
            UPLOADERS,
            body=_dicom_files,
            multipart=True,
        ),
    ],
    "api-upload-submit": [
        Rule(
            "post",
            lambda o: f"/api/uploads/{o['upload'].pk}/submit/",
            _with(UPLOADERS, uploader=202, lead=202),
        )
    ],
    "api-jobs": [
        Rule("get", lambda o: "/api/jobs/", ANY, "absent"),
        Rule(
            "post",
            lambda o: "/api/jobs/",
            _with(UPLOADERS, uploader=201, lead=201),
            body=lambda w: None,  # replaced per scope below
        ),
    ],
    "api-job-detail": [Rule("get", lambda o: f"/api/jobs/{o['job'].pk}/", ANY)],
    "api-predictions": [Rule("get", lambda o: "/api/predictions/", ANY, "absent")],
    "api-images": [Rule("get", lambda o: "/api/images/", ANY, "absent")],
    "api-image-detail": [Rule("get", lambda o: f"/api/images/{o['image'].pk}/", ANY)],
    "api-image-dicom": [Rule("get", lambda o: f"/api/images/{o['image'].pk}/dicom/", ANY)],
    "api-image-preview": [Rule("get", lambda o: f"/api/images/{o['image'].pk}/preview/", ANY)],
    "api-image-heatmap": [Rule("get", lambda o: f"/api/images/{o['image'].pk}/heatmap/", ANY)],
    "api-image-reviews": [
        Rule("get", lambda o: f"/api/images/{o['image'].pk}/reviews/", ANY),
        Rule(
            "post",
            lambda o: f"/api/images/{o['image'].pk}/reviews/",
            _with(REVIEWERS, reviewer=201, lead=201),
            body=lambda w: None,  # per scope, below
        ),
    ],
    "api-image-audit": [Rule("get", lambda o: f"/api/images/{o['image'].pk}/audit/", ANY)],
    "api-review-queue": [Rule("get", lambda o: "/api/review/queue/", ANY, "absent")],
    "api-review-queue-next": [  # one case, of any site the user reviews
        Rule("post", lambda o: "/api/review/queue/next/", REVIEWERS, "absent", lists_sites=False)
    ],
    "api-review-disputes": [
        Rule("get", lambda o: "/api/review/disputes/", LEADS, "absent", lists_sites=False)
    ],
    "api-audit": [Rule("get", lambda o: "/api/audit/", LEADS, "absent")],
    "api-audit-export": [Rule("get", lambda o: "/api/audit/export/", LEADS, "absent")],
    "validation:list": [Rule("get", lambda o: "/validation-sets/", ANY, "absent")],
    "validation:detail": [Rule("get", lambda o: f"/validation-sets/{o['set'].name}/", ANY)],
    "validation:import": [Rule("get", lambda o: "/validation-sets/import/new/", LEADS, "same")],
    "validation:freeze": [
        Rule("post", lambda o: f"/validation-sets/{o['set'].name}/freeze/", _with(LEADS, lead=302))
    ],
    "validation:export": [
        Rule(
            "post",
            lambda o: f"/validation-sets/{o['set'].name}/versions/1/export/",
            _with(LEADS, lead=302),
        )
    ],
    "reports:new": [
        Rule(
            "post",
            lambda o: "/reports/new/",
            _with(LEADS, lead=302),
            body=lambda w: None,  # per scope, below
            multipart=True,
        )
    ],
    "reports:detail": [Rule("get", lambda o: f"/reports/{o['report'].pk}/", ANY)],
    "learning:detail": [Rule("get", lambda o: f"/jobs/training/{o['training_job'].pk}/", ANY)],
    # The job has made no version yet: the lead's activation is refused with a message.
    "learning:activate": [
        Rule(
            "post",
            lambda o: f"/jobs/training/{o['training_job'].pk}/activate/",
            _with(LEADS, lead=302),
        )
    ],
    "api-validation-sets": [
        Rule("get", lambda o: "/api/validation-sets/", ANY, "absent"),
        Rule(
            "post",
            lambda o: "/api/validation-sets/",
            _with(LEADS, lead=201),
            body=lambda w: None,  # per scope, below
        ),
    ],
    "api-validation-set": [Rule("get", lambda o: f"/api/validation-sets/{o['set'].name}/", ANY)],
    # Leads and administrators may try; an empty ZIP is then refused as no export (400).
    "api-validation-set-import": [
        Rule(
            "post",
            lambda o: "/api/validation-set-imports/",
            _with(LEADS, lead=400),
            "same",
            body=lambda w: {"file": SimpleUploadedFile("x.zip", b"PK\x05\x06" + bytes(18))},
            multipart=True,
        )
    ],
    "api-validation-set-freeze": [
        Rule(
            "post",
            lambda o: f"/api/validation-sets/{o['set'].name}/freeze/",
            _with(LEADS, lead=201),
        )
    ],
    "api-validation-set-diff": [
        Rule("get", lambda o: f"/api/validation-sets/{o['set'].name}/diff/?from=1&to=1", ANY)
    ],
    "api-validation-set-version": [
        Rule("get", lambda o: f"/api/validation-sets/{o['set'].name}/versions/1/", ANY)
    ],
    "api-validation-set-items": [
        Rule("get", lambda o: f"/api/validation-sets/{o['set'].name}/versions/1/items/", ANY)
    ],
    "api-validation-set-export": [
        Rule("get", lambda o: f"/api/validation-sets/{o['set'].name}/versions/1/export/", ANY),
        Rule(
            "post",
            lambda o: f"/api/validation-sets/{o['set'].name}/versions/1/export/",
            _with(LEADS, lead=202),
        ),
    ],
    "api-validation-set-export-download": [
        Rule(
            "get",
            lambda o: f"/api/validation-sets/{o['set'].name}/versions/1/export/download/",
            ANY,
        )
    ],
    "api-reports": [
        Rule(
            "post",
            lambda o: "/api/reports/",
            _with(LEADS, lead=202),
            body=lambda w: None,  # per scope, below
        )
    ],
    "api-report": [Rule("get", lambda o: f"/api/reports/{o['report'].pk}/", ANY)],
    "api-training-jobs": [
        Rule("get", lambda o: "/api/training-jobs/", ANY, "absent"),
        # A lead passes the permission check; the set's one curated case is then too few.
        Rule(
            "post",
            lambda o: "/api/training-jobs/",
            _with(LEADS, lead=400),
            body=lambda w: None,  # per scope, below
        ),
    ],
    "api-training-job": [Rule("get", lambda o: f"/api/training-jobs/{o['training_job'].pk}/", ANY)],
    "api-training-job-activate": [
        Rule(
            "post",
            lambda o: f"/api/training-jobs/{o['training_job'].pk}/activate/",
            _with(LEADS, lead=409),
        )
    ],
    "api-report-download": [
        Rule("get", lambda o: f"/api/reports/{o['report'].pk}/download/json/", ANY)
    ],
}


def test_every_url_has_a_permission_rule():
    missing = [name for name in url_names() if name not in RULES and name not in PUBLIC]
    assert not missing, f"URLs without a permission rule (add them to RULES): {missing}"
    stale = [name for name in RULES if name not in url_names()]
    assert not stale, f"rules for URLs that no longer exist: {stale}"


CASES = [
    pytest.param(name, i, role, scope, id=f"{name}-{rule.method}-{role}-{scope}")
    for name in url_names()
    for i, rule in enumerate(RULES.get(name, []))
    for role in ROLES
    for scope in ("own", "other")
    if not (scope == "other" and rule.other == "same")
]


def _body(world: World, name: str, rule: Rule, scope: str):
    objects = world.of(scope)
    if name == "api-jobs" and rule.method == "post":
        return {"site": objects["site"].slug}
    if name == "api-validation-sets" and rule.method == "post":
        return {"name": "new-set", "sites": [objects["site"].slug]}
    if name == "api-image-reviews" and rule.method == "post":
        objects["image"].refresh_from_db()
        return {"decision": "confirm", "revision": objects["image"].revision}
    if name in ("api-reports", "reports:new"):
        return {"validation_set": f"{objects['set'].name}:1", "model": "m1"}
    if name == "api-training-jobs" and rule.method == "post":
        return {
            "parent": "m1",
            "validation_sets": [f"{objects['set'].name}:1"],
            "name": "tuned-new",
            "recalibrate_only": True,
        }
    return rule.body(world) if rule.body else None


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "index", "role", "scope"), CASES)
def test_permission_matrix(name, index, role, scope, tmp_path):
    rule = RULES[name][index]
    world = build_world(tmp_path)
    client = APIClient()
    if role != "anonymous":
        client.force_login(world.users[role])
    # Lists always ask on the own site's path; objects use the scope's object.
    objects = world.of("own" if rule.other == "absent" else scope)
    body = _body(world, name, rule, scope)
    kwargs = {"format": "multipart" if rule.multipart else "json"} if body is not None else {}
    response = getattr(client, rule.method)(rule.path(objects), body, **kwargs)

    if role == "anonymous":
        if name.startswith(("api", "dicomweb")) or name == "schema":
            assert response.status_code in (401, 403), response.content[:200]
        else:
            assert response.status_code == 302
            assert "/accounts/login/" in response["Location"]
        return
    if role == "superuser":
        expected = rule.expect.get("superuser", rule.expect["lead"])
        assert response.status_code == expected, (response.status_code, response.content[:300])
        if rule.other == "absent" and rule.lists_sites and response.status_code == 200:
            content = (
                b"".join(response.streaming_content) if response.streaming else response.content
            )
            assert b"south" in content, "a superuser's list leaves another site out"
        return
    if scope == "other" and rule.other == 404:
        assert response.status_code == 404, (response.status_code, response.content[:300])
        return
    expected = rule.expect[role]
    assert response.status_code == expected, (response.status_code, response.content[:300])
    if rule.other == "absent" and response.status_code == 200:
        content = b"".join(response.streaming_content) if response.streaming else response.content
        assert b"south" not in content, "another site's data is listed"
        if name == "api-review-queue-next":
            assert response.json()["image"] == world.of("own")["image"].pk


@pytest.mark.django_db
def test_the_admin_is_for_staff_only(tmp_path):
    world = build_world(tmp_path)
    for role in SITE_ROLES:
        user = world.users[role]
        client = APIClient()
        client.force_login(user)
        for path in ("/admin/", "/admin/accounts/auditevent/", "/admin/ingest/image/"):
            response = client.get(path)
            assert response.status_code == 302, (role, path)
            assert "/admin/login/" in response["Location"]
