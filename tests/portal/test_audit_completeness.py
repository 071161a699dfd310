"""Every URL of the portal, and every admin form and action, classified: reading, or changing
data / handing out pixels. Each of the latter is requested for real and must write exactly the
audit events listed for it (usually one), with the right action and site.

A URL or admin action missing from the tables fails `test_every_url_is_classified` and
`test_every_admin_action_is_classified`: a new endpoint must say what it records.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from portal.accounts.models import AuditEvent, Membership
from portal.accounts.tokens import token_create
from portal.accounts.trust import trusted_portal_add
from portal.core import signing
from portal.core.models import ApiToken, TrustedPortal
from portal.ingest.models import Upload
from portal.ingest.services import upload_create
from portal.learning.models import TrainingJob
from portal.pacs.multipart import write_parts
from portal.pacs.services import site_ae_set
from portal.predictions.models import ModelVersion
from portal.reports.models import Report
from portal.reports.services import report_finish
from portal.review.services import review_submit
from portal.validation.models import ValidationExport
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.dicom_files import make_dicom
from tests.portal import factories as f

READ = "read"  # reads only (pages, lists, metadata): no event
SESSION = "session"  # logging in and out: Django's session, not portal data


def _confirm(image, user) -> None:
    image.refresh_from_db()
    review_submit(
        image=image,
        reviewer=user,
        decision="confirm",
        age_days=None,
        reason="",
        comment="",
        expected_revision=image.revision,
    )


@dataclass
class World:
    north: object
    south: object
    users: dict
    objects: dict = field(default_factory=dict)

    def __getitem__(self, key: str):
        return self.objects[key]


def build_world(tmp_path: Path) -> World:
    north, south = f.site("north"), f.site("south")
    version = f.model_version("m1", card={"expected_error_months": {"overall": 1.0}})
    f.model_version("m2", active=False, card={"expected_error_months": {"overall": 1.0}})
    users = {role: f.user(role, role, north) for role in ("uploader", "reviewer", "lead")}
    users["root"] = get_user_model().objects.create_superuser("root", password=f.PASSWORD)
    users["outsider"] = f.user("outsider")
    image = f.image(north, age_days=2000, dicom=True)
    f.prediction(image, version, age_days=2600, heatmap=True)
    kept = f.image(north, age_days=3000)
    f.prediction(kept, version, age_days=3100)
    _confirm(kept, users["lead"])
    chosen = validation_set_create(name="set-north", sites=[north], user=users["lead"])
    frozen = validation_set_freeze(validation_set=chosen, user=users["lead"])
    export = ValidationExport.objects.create(
        version=frozen, state="done", file="exports/set-north-v1.zip", total=1, done=1
    )
    path = Path(settings.DATA_DIR) / export.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty ZIP
    report = report_finish(
        report=Report.objects.create(
            version=frozen, model_version=version, age_groups=[[0, 18]], resamples=10
        )
    )
    member = f.user("member", "reviewer", north)
    world = World(north=north, south=south, users=users)
    world.objects.update(
        image=image,
        kept=kept,
        set=chosen,
        report=report,
        export=export,
        upload=upload_create(site=north, source=Upload.Source.API, user=users["uploader"]),
        membership=Membership.objects.get(user=member, site=north),
        member=member,
        dicom=make_dicom(tmp_path / "a.dcm").read_bytes(),
        site_ae=site_ae_set(site=north, ae_title="NORTH_AE", senders=["PACS@10.0.0.1"]),
    )
    world.objects["foreign_zip"] = _foreign_export(world, tmp_path)
    return world


@dataclass
class Audited:
    """A request that must write exactly `actions` (each once unless listed twice), every one
    on `site` (a site's slug, None for a global event, or a site per action)."""

    method: str
    path: Callable[[World], str]
    actions: tuple[str, ...]
    site: str | None | dict[str, str | None] = "north"
    user: str = "lead"
    body: Callable[[World], dict] | None = None
    multipart: bool = False
    status: tuple[int, ...] = (200, 201, 202, 204, 302)
    prepare: Callable[[World], None] | None = None
    by_system: tuple[str, ...] = ()  # actions the portal takes in follow-up: no actor
    content_type: str | None = None  # a raw body of this type (DICOMweb's multipart/related)


def _files(world: World) -> dict:
    return {"files": [SimpleUploadedFile("a.dcm", world["dicom"])], "finish": "false"}


def _curated_cases(world: World) -> None:
    """Enough curated north films for a recalibration: a set `set-train` frozen from ten."""
    for i in range(10):
        _confirm(f.image(world.north, age_days=1000 + 300 * i), world.users["lead"])
    chosen = validation_set_create(name="set-train", sites=[world.north], user=world.users["lead"])
    validation_set_freeze(validation_set=chosen, user=world.users["lead"])


def _finished_training_job(world: World) -> None:
    """A recalibration of m1 on set-north that produced m2, waiting for the lead's decision."""
    job = TrainingJob.objects.create(
        name="tuned", mode="recalibrate", parent=_model("m1"), result_version=_model("m2")
    )
    job.set_versions.set([world["set"].versions.get()])
    world.objects["training_job"] = job


def _new_confirmed(world: World) -> None:
    """Something for a freeze to take: a second confirmed image."""
    _confirm(world["image"], world.users["lead"])


def _review(world: World) -> dict:
    world["image"].refresh_from_db()
    return {"decision": "confirm", "revision": world["image"].revision}


def _foreign_export(world: World, tmp_path: Path) -> Path:
    out = f.foreign_export(tmp_path / "foreign.zip", slug="ext", reviewer=world.users["root"])
    trusted_portal_add(actor=None, name="self", public_key=signing.own_public_key())
    return out


def _import_body(world: World) -> dict:
    path = world["foreign_zip"]
    return {"file": SimpleUploadedFile("foreign.zip", path.read_bytes())}


# An import as an administrator into a site it creates: the site, its upload and the set. The
# prediction job for the new images comes after commit, from predictions' `upload_done` task
# (ingest sends it by name: tests/portal/test_broker_outage.py), and is no part of the request.
IMPORT_EVENTS = ("site.create", "upload.create", "validation_set.import")

SET = "/validation-sets/set-north"
API_SET = "/api/validation-sets/set-north"

# Every URL name (outside the admin) -> per HTTP method: READ, SESSION or Audited.
STOW_BOUNDARY = "audit-stow"


def _instance(w: World, tail: str = "") -> str:
    """The world's image under /dicomweb/ (WADO-RS), with `tail` after it."""
    return w["image"].wado_rs_path + tail


def _wado(tail: str, action: str = "image.dicom") -> dict:
    return {"GET": Audited("get", lambda w: _instance(w, tail), (action,), user="uploader")}


def _stow_body(world: World) -> bytes:
    return b"".join(write_parts([("application/dicom", [world["dicom"]])], STOW_BOUNDARY))


URLS: dict[str, dict[str, object]] = {
    # DICOMweb: searches read; retrieval hands out pixels; STOW-RS is an upload.
    "dicomweb:studies": {
        "GET": READ,
        "POST": Audited(
            "post",
            lambda w: "/dicomweb/studies",
            ("upload.create",),
            user="uploader",
            body=_stow_body,
            content_type=f'multipart/related; type="application/dicom"; boundary={STOW_BOUNDARY}',
        ),
    },
    "dicomweb:series": {"GET": READ},
    "dicomweb:instances": {"GET": READ},
    "dicomweb:study-series": {"GET": READ},
    "dicomweb:study-instances": {"GET": READ},
    "dicomweb:series-instances": {"GET": READ},
    "dicomweb:study": {
        "GET": Audited(
            "get",
            lambda w: f"/dicomweb/studies/{w['image'].study_instance_uid}",
            ("image.dicom",),
            user="uploader",
        )
    },
    "dicomweb:study-metadata": {
        "GET": Audited(
            "get",
            lambda w: f"/dicomweb/studies/{w['image'].study_instance_uid}/metadata",
            ("image.dicom",),
            user="uploader",
        )
    },
    "dicomweb:series-retrieve": {
        "GET": Audited(
            "get",
            lambda w: _instance(w).rsplit("/instances/", 1)[0],
            ("image.dicom",),
            user="uploader",
        )
    },
    "dicomweb:series-metadata": {
        "GET": Audited(
            "get",
            lambda w: _instance(w).rsplit("/instances/", 1)[0] + "/metadata",
            ("image.dicom",),
            user="uploader",
        )
    },
    "dicomweb:instance": _wado(""),
    "dicomweb:instance-metadata": _wado("/metadata"),
    "dicomweb:frames": _wado("/frames/1"),
    "dicomweb:rendered": _wado("/rendered", "image.view"),
    "dicomweb:frames-rendered": _wado("/frames/1/rendered", "image.view"),
    "home": {"GET": READ},
    "api-demo-model-status": {"GET": READ},
    "api-review-disputes": {"GET": READ},
    "review:disputes": {"GET": READ},
    "login": {"GET": SESSION, "POST": SESSION, "PUT": SESSION},
    "logout": {"POST": SESSION},
    "schema": {"GET": READ},
    "api-docs": {"GET": READ},
    "ingest:upload-list": {"GET": READ},
    "ingest:upload-new": {"GET": READ},
    "ingest:upload-detail": {"GET": READ},
    "predictions:job-list": {"GET": READ},
    "review:image-list": {"GET": READ},
    "review:image": {"GET": READ},  # the page; its script asks the API (audited below)
    "review:queue": {"GET": READ},
    "review:queue-next": {
        "POST": Audited("post", lambda w: "/review/next/", ("lease.take",), user="reviewer")
    },
    "review:audit": {"GET": READ},
    "review:site-blind-reading": {
        "POST": Audited(
            "post",
            lambda w: "/review/sites/north/blind-reading/",
            ("site.change",),
            body=lambda w: {"blind_reading": "on"},
            multipart=True,
        )
    },
    "accounts:team": {
        "GET": READ,
        "POST": Audited(
            "post",
            lambda w: "/team/",
            ("role.grant",),
            body=lambda w: {"username": "outsider", "role": "reviewer", "site": "north"},
            multipart=True,
        ),
    },
    "accounts:revoke": {
        "POST": Audited("post", lambda w: f"/team/{w['membership'].pk}/revoke/", ("role.revoke",))
    },
    "validation:list": {
        "GET": READ,
        "POST": Audited(
            "post",
            lambda w: "/validation-sets/",
            ("validation_set.create",),
            body=lambda w: {"name": "set-new", "sites": ["north"]},
            multipart=True,
        ),
    },
    "validation:detail": {"GET": READ},
    "validation:freeze": {
        "POST": Audited(
            "post",
            lambda w: f"{SET}/freeze/",
            ("validation_set.freeze",),
            prepare=_new_confirmed,
        )
    },
    "validation:export": {
        "POST": Audited("post", lambda w: f"{SET}/versions/1/export/", ("export.start",))
    },
    "reports:new": {
        "POST": Audited(
            "post",
            lambda w: "/reports/new/",
            ("report.build",),
            body=lambda w: {"validation_set": "set-north:1", "model": "m1"},
            multipart=True,
        )
    },
    "reports:detail": {"GET": READ},
    "learning:detail": {"GET": READ},
    "learning:activate": {
        "POST": Audited(
            "post",
            lambda w: f"/jobs/training/{w['training_job'].pk}/activate/",
            ("model.activate",),
            site=None,
            prepare=_finished_training_job,
        )
    },
    "api-training-jobs": {
        "GET": READ,
        "POST": Audited(
            "post",
            lambda w: "/api/training-jobs/",
            ("job.create",),
            body=lambda w: {
                "parent": "m1",
                "validation_sets": ["set-train"],
                "name": "tuned",
                "recalibrate_only": True,
            },
            prepare=_curated_cases,
        ),
    },
    "api-training-job": {"GET": READ},
    "api-training-job-activate": {
        "POST": Audited(
            "post",
            lambda w: f"/api/training-jobs/{w['training_job'].pk}/activate/",
            ("model.activate",),
            site=None,
            prepare=_finished_training_job,
        )
    },
    "api-sites": {"GET": READ},
    "api-upload-create": {
        "POST": Audited(
            "post",
            lambda w: "/api/sites/north/uploads/",
            ("upload.create", "upload.files"),
            user="uploader",
            body=_files,
            multipart=True,
        )
    },
    "api-uploads": {"GET": READ},
    "api-upload-detail": {"GET": READ},
    "api-upload-files": {
        "GET": READ,
        "POST": Audited(
            "post",
            lambda w: f"/api/uploads/{w['upload'].pk}/files/",
            ("upload.files",),
            user="uploader",
            body=_files,
            multipart=True,
        ),
    },
    "api-upload-submit": {
        "POST": Audited(
            "post",
            lambda w: f"/api/uploads/{w['upload'].pk}/submit/",
            ("upload.submit",),
            user="uploader",
        )
    },
    "api-jobs": {
        "GET": READ,
        "POST": Audited(
            "post", lambda w: "/api/jobs/", ("job.create",), body=lambda w: {"site": "north"}
        ),
    },
    "api-job-detail": {"GET": READ},
    "api-predictions": {"GET": READ},
    "api-images": {"GET": READ},
    "api-image-detail": {
        "GET": Audited(
            "get", lambda w: f"/api/images/{w['image'].pk}/", ("image.view",), user="uploader"
        )
    },
    "api-image-dicom": {
        "GET": Audited(
            "get",
            lambda w: f"/api/images/{w['image'].pk}/dicom/",
            ("image.dicom",),
            user="uploader",
        )
    },
    "api-image-preview": {
        "GET": Audited(
            "get",
            lambda w: f"/api/images/{w['image'].pk}/preview/",
            ("image.preview",),
            user="uploader",
        )
    },
    "api-image-heatmap": {
        "GET": Audited(
            "get",
            lambda w: f"/api/images/{w['image'].pk}/heatmap/",
            ("image.heatmap",),
            user="uploader",
        )
    },
    "api-image-reviews": {
        "GET": READ,
        "POST": Audited(
            "post",
            lambda w: f"/api/images/{w['image'].pk}/reviews/",
            ("review.confirm",),
            user="reviewer",
            body=_review,
        ),
    },
    "api-image-audit": {"GET": READ},
    "api-review-queue": {"GET": READ},
    "api-review-queue-next": {
        "POST": Audited(
            "post", lambda w: "/api/review/queue/next/", ("lease.take",), user="reviewer"
        )
    },
    "api-audit": {"GET": READ},
    "api-audit-export": {"GET": READ},  # the log itself: no pixels, no change
    "api-validation-sets": {
        "GET": READ,
        "POST": Audited(
            "post",
            lambda w: "/api/validation-sets/",
            ("validation_set.create",),
            body=lambda w: {"name": "set-new", "sites": ["north"]},
        ),
    },
    "api-validation-set": {"GET": READ},
    "api-validation-set-freeze": {
        "POST": Audited(
            "post",
            lambda w: f"{API_SET}/freeze/",
            ("validation_set.freeze",),
            prepare=_new_confirmed,
        )
    },
    "api-validation-set-diff": {"GET": READ},
    "api-validation-set-version": {"GET": READ},
    "api-validation-set-items": {"GET": READ},
    "api-validation-set-export": {
        "GET": READ,
        "POST": Audited("post", lambda w: f"{API_SET}/versions/1/export/", ("export.start",)),
    },
    "api-validation-set-export-download": {
        "GET": Audited(
            "get",
            lambda w: f"{API_SET}/versions/1/export/download/",
            ("export.download",),
            user="reviewer",
        )
    },
    "api-reports": {
        "POST": Audited(
            "post",
            lambda w: "/api/reports/",
            ("report.build",),
            body=lambda w: {"validation_set": "set-north:1", "model": "m1"},
        )
    },
    "api-report": {"GET": READ},
    "validation:import": {
        "GET": READ,
        "POST": Audited(
            "post",
            lambda w: "/validation-sets/import/new/",
            IMPORT_EVENTS,
            site="ext",
            user="root",
            body=_import_body,
            multipart=True,
        ),
    },
    "api-validation-set-import": {
        "POST": Audited(
            "post",
            lambda w: "/api/validation-set-imports/",
            IMPORT_EVENTS,
            site="ext",
            user="root",
            body=_import_body,
            multipart=True,
        )
    },
    "api-report-download": {
        "GET": Audited(
            "get",
            lambda w: f"/api/reports/{w['report'].pk}/download/csv/",
            ("report.download",),
            user="reviewer",
        )
    },
}


def _admin(path: str) -> str:
    return f"/admin/{path}"


def _membership_change(world: World) -> dict:
    return {"user": world["member"].pk, "site": world.south.pk, "role": "reviewer"}


def _user_form(world: World, **overrides) -> dict:
    member = world["member"]
    form = {
        "username": member.username,
        "is_active": "on",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": str(world["membership"].pk),
        "memberships-0-user": str(member.pk),
        "memberships-0-site": str(world.north.pk),
        "memberships-0-role": "reviewer",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def _delete(world: World) -> dict:
    return {"post": "yes"}


def _no_senders() -> dict:
    """An unchanged, empty senders inline of the AE title form."""
    return {
        "senders-TOTAL_FORMS": "0",
        "senders-INITIAL_FORMS": "0",
        "senders-MIN_NUM_FORMS": "0",
        "senders-MAX_NUM_FORMS": "1000",
    }


BLOCKED = "blocked"  # the admin refuses it (no permission, even for a superuser)

# The admin's site-wide URLs.
ADMIN_URLS: dict[str, object] = {
    "admin:index": READ,
    "admin:app_list": READ,
    "admin:login": SESSION,
    "admin:logout": SESSION,
    "admin:autocomplete": READ,
    "admin:jsi18n": READ,
    "admin:view_on_site": READ,
    "admin:password_change_done": READ,
    "admin:password_change": Audited(
        "post",
        lambda w: _admin("password_change/"),
        ("user.password",),
        site=None,
        user="root",
        body=lambda w: {
            "old_password": f.PASSWORD,
            "new_password1": "another-long-password-42",
            "new_password2": "another-long-password-42",
        },
        multipart=True,
    ),
}

# Per registered model (app_label.model_name): its add, change and delete forms, each READ,
# BLOCKED or Audited (the changelist and history pages only read). `actions`: its admin
# actions, each Audited.
ADMIN_MODELS: dict[str, dict[str, object]] = {
    "accounts.auditevent": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "accounts.membership": {
        "add": Audited(
            "post",
            lambda w: _admin("accounts/membership/add/"),
            ("role.grant",),
            site="south",
            user="root",
            body=_membership_change,
            multipart=True,
        ),
        # Moving a role to another site revokes the old one and grants the new (issue 15, 5).
        "change": Audited(
            "post",
            lambda w: _admin(f"accounts/membership/{w['membership'].pk}/change/"),
            ("role.revoke", "role.grant"),
            site={"role.revoke": "north", "role.grant": "south"},
            user="root",
            body=_membership_change,
            multipart=True,
        ),
        "delete": Audited(
            "post",
            lambda w: _admin(f"accounts/membership/{w['membership'].pk}/delete/"),
            ("role.revoke",),
            user="root",
            body=_delete,
            multipart=True,
        ),
        "actions": {
            "delete_selected": Audited(
                "post",
                lambda w: _admin("accounts/membership/"),
                ("role.revoke",),
                user="root",
                body=lambda w: {
                    "action": "delete_selected",
                    "_selected_action": [w["membership"].pk],
                    "post": "yes",
                },
                multipart=True,
            )
        },
    },
    "auth.user": {
        "add": Audited(
            "post",
            lambda w: _admin("auth/user/add/"),
            ("user.create",),
            site=None,
            user="root",
            body=lambda w: {
                "username": "newcomer",
                "password1": "a-long-password-for-new",
                "password2": "a-long-password-for-new",
                "usable_password": "true",
                "memberships-TOTAL_FORMS": "0",
                "memberships-INITIAL_FORMS": "0",
                "memberships-MIN_NUM_FORMS": "0",
                "memberships-MAX_NUM_FORMS": "1000",
            },
            multipart=True,
        ),
        # Made staff and superuser in one save: one event, flags before -> after.
        "change": Audited(
            "post",
            lambda w: _admin(f"auth/user/{w['member'].pk}/change/"),
            ("user.change",),
            site=None,
            user="root",
            body=lambda w: _user_form(w, is_staff="on", is_superuser="on"),
            multipart=True,
        ),
        "delete": Audited(
            "post",
            lambda w: _admin(f"auth/user/{w['member'].pk}/delete/"),
            ("user.delete", "role.revoke"),
            site={"user.delete": None, "role.revoke": "north"},
            user="root",
            body=_delete,
            multipart=True,
        ),
        "password_change": Audited(
            "post",
            lambda w: _admin(f"auth/user/{w['member'].pk}/password/"),
            ("user.password",),
            site=None,
            user="root",
            body=lambda w: {
                "password1": "another-long-password-42",
                "password2": "another-long-password-42",
                "usable_password": "true",
            },
            multipart=True,
        ),
        "actions": {
            "delete_selected": Audited(
                "post",
                lambda w: _admin("auth/user/"),
                ("user.delete", "role.revoke"),
                site={"user.delete": None, "role.revoke": "north"},
                user="root",
                body=lambda w: {
                    "action": "delete_selected",
                    "_selected_action": [w["member"].pk],
                    "post": "yes",
                },
                multipart=True,
            )
        },
    },
    "core.apitoken": {
        "add": Audited(
            "post",
            lambda w: _admin("core/apitoken/add/"),
            ("token.create",),
            site=None,
            user="root",
            body=lambda w: {"user": w["member"].pk, "name": "ci"},
            multipart=True,
        ),
        "change": BLOCKED,
        "delete": Audited(
            "post",
            lambda w: _admin(f"core/apitoken/{_token(w).pk}/delete/"),
            ("token.revoke",),
            site=None,
            user="root",
            body=_delete,
            multipart=True,
        ),
        "actions": {
            "delete_selected": Audited(
                "post",
                lambda w: _admin("core/apitoken/"),
                ("token.revoke",),
                site=None,
                user="root",
                body=lambda w: {
                    "action": "delete_selected",
                    "_selected_action": [_token(w).pk],
                    "post": "yes",
                },
                multipart=True,
            )
        },
    },
    "core.trustedportal": {
        "add": Audited(
            "post",
            lambda w: _admin("core/trustedportal/add/"),
            ("trusted_portal.add",),
            site=None,
            user="root",
            body=lambda w: {"name": "east", "public_key": _public_key()},
            multipart=True,
        ),
        "change": BLOCKED,
        "delete": Audited(
            "post",
            lambda w: _admin(f"core/trustedportal/{_trusted(w).pk}/delete/"),
            ("trusted_portal.remove",),
            site=None,
            user="root",
            body=_delete,
            multipart=True,
        ),
        "actions": {
            "delete_selected": Audited(
                "post",
                lambda w: _admin("core/trustedportal/"),
                ("trusted_portal.remove",),
                site=None,
                user="root",
                body=lambda w: {
                    "action": "delete_selected",
                    "_selected_action": [_trusted(w).pk],
                    "post": "yes",
                },
                multipart=True,
            )
        },
    },
    "ingest.site": {
        "add": Audited(
            "post",
            lambda w: _admin("ingest/site/add/"),
            ("site.create",),
            site="east",
            user="root",
            body=lambda w: {"slug": "east", "name": "East"},
            multipart=True,
        ),
        "change": Audited(
            "post",
            lambda w: _admin(f"ingest/site/{w.north.pk}/change/"),
            ("site.change",),
            user="root",
            body=lambda w: {"slug": "north", "name": "North", "double_reading": "on"},
            multipart=True,
        ),
        "delete": BLOCKED,
    },
    "ingest.upload": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    # A site's DICOM AE title and its senders (portal.pacs): each form audited as dicom_ae is.
    "pacs.siteae": {
        "add": Audited(
            "post",
            lambda w: _admin("pacs/siteae/add/"),
            ("dicom.ae",),
            site="south",
            user="root",
            body=lambda w: {"site": w.south.pk, "ae_title": "SOUTH_AE", **_no_senders()},
            multipart=True,
        ),
        "change": Audited(
            "post",
            lambda w: _admin(f"pacs/siteae/{w['site_ae'].pk}/change/"),
            ("dicom.ae",),
            user="root",
            body=lambda w: {"site": w.north.pk, "ae_title": "NORTH_NEW", **_no_senders()},
            multipart=True,
        ),
        "delete": Audited(
            "post",
            lambda w: _admin(f"pacs/siteae/{w['site_ae'].pk}/delete/"),
            ("dicom.ae",),
            user="root",
            body=_delete,
            multipart=True,
        ),
    },
    "ingest.image": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "predictions.modelversion": {
        "add": BLOCKED,
        "change": BLOCKED,
        "delete": BLOCKED,
        "actions": {
            "activate": Audited(
                "post",
                lambda w: _admin("predictions/modelversion/"),
                ("model.activate",),
                site=None,
                user="root",
                body=lambda w: {"action": "activate", "_selected_action": [_model("m2").pk]},
                multipart=True,
            )
        },
    },
    "predictions.predictionjob": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "predictions.prediction": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "predictions.calibration": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "reports.report": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "learning.trainingjob": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "review.review": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "validation.validationset": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "validation.validationsetversion": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "validation.validationitem": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
    "validation.validationexport": {"add": BLOCKED, "change": BLOCKED, "delete": BLOCKED},
}
ADMIN_VIEWS = ("add", "change", "delete")
READ_ADMIN_VIEWS = ("changelist", "history")


def _token(world: World) -> ApiToken:
    return world.objects.setdefault(
        "token", token_create(actor=None, user=world["member"], name="ci")[0]
    )


def _public_key() -> str:
    """Another portal's key (this portal's own is trusted in every world already)."""
    return signing.public_key_text(Ed25519PrivateKey.generate().public_key())


def _trusted(world: World) -> TrustedPortal:
    return world.objects.setdefault(
        "trusted", trusted_portal_add(actor=None, name="west", public_key=_public_key())
    )


def _model(name: str) -> ModelVersion:
    return ModelVersion.objects.get(name=name)


def _url_names() -> list[str]:
    """Every URL pattern's name, the admin's included; a pattern without a name by route."""
    names: list[str] = []

    def walk(patterns, namespace: str, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                inner = f"{p.namespace}:" if p.namespace else namespace
                walk(p.url_patterns, inner, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                names.append(namespace + p.name if p.name else f"route {prefix}{p.pattern}")

    walk(get_resolver().url_patterns, "", "")
    return sorted(set(names))


def _admin_models() -> dict[str, admin.ModelAdmin]:
    admin.autodiscover()  # what the URL configuration does (`portal.accounts.admin_config`)
    return {
        f"{model._meta.app_label}.{model._meta.model_name}": model_admin
        for model, model_admin in admin.site._registry.items()
    }


def _admin_url_known(name: str) -> bool:
    if name in ADMIN_URLS:
        return True
    for label in ADMIN_MODELS:
        prefix = "admin:" + label.replace(".", "_") + "_"
        view = name.removeprefix(prefix)
        if view != name and (view in READ_ADMIN_VIEWS or view in ADMIN_MODELS[label]):
            return True
    return False


def test_every_url_is_classified():
    unknown = []
    for name in _url_names():
        if name.startswith("admin:"):
            if not _admin_url_known(name):
                unknown.append(name)
        elif name not in URLS and not name.startswith("route admin/"):
            unknown.append(name)
    assert not unknown, f"classify these URLs in test_audit_completeness: {unknown}"
    stale = sorted(set(URLS) - set(_url_names()))
    assert not stale, f"classified URLs that no longer exist: {stale}"


def test_every_api_method_is_classified():
    """Each method an API view implements has its row (a view gaining `delete` must say)."""
    missing = []
    for pattern in _patterns():
        view_class = getattr(pattern.callback, "view_class", None)
        if view_class is None or pattern.name not in URLS:
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            served = hasattr(view_class, method) and method in view_class.http_method_names
            if served and method.upper() not in URLS[pattern.name]:
                missing.append(f"{pattern.name} {method.upper()}")
    assert not missing, f"classify these methods: {missing}"


def _patterns() -> list[URLPattern]:
    found: list[URLPattern] = []

    def walk(patterns) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace != "admin":
                    walk(p.url_patterns)
            elif p.name:
                found.append(p)

    walk(get_resolver().url_patterns)
    return found


@pytest.mark.django_db
def test_every_admin_model_and_action_is_classified(admin_user):
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    registered = _admin_models()
    assert sorted(set(registered) - set(ADMIN_MODELS)) == [], "classify these admin models"
    assert sorted(set(ADMIN_MODELS) - set(registered)) == [], "no longer registered"
    unknown = []
    for label, model_admin in registered.items():
        listed = ADMIN_MODELS[label].get("actions", {})
        for action in model_admin.get_actions(request):
            if action not in listed:
                unknown.append(f"{label} {action}")
    assert not unknown, f"classify these admin actions: {unknown}"


@pytest.mark.django_db
def test_blocked_admin_forms_refuse_a_superuser(admin_user, tmp_path):
    """BLOCKED means refused: the model admin grants no such permission, even to a superuser."""
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    checks = {
        "add": lambda ma: ma.has_add_permission(request),
        "change": lambda ma: ma.has_change_permission(request),
        "delete": lambda ma: ma.has_delete_permission(request),
    }
    allowed = [
        f"{label} {view}"
        for label, model_admin in _admin_models().items()
        for view, rule in ADMIN_MODELS[label].items()
        if rule == BLOCKED and checks[view](model_admin)
    ]
    assert not allowed, f"marked BLOCKED but allowed: {allowed}"


def _audited_cases() -> list:
    cases = []
    for name, methods in URLS.items():
        for method, rule in methods.items():
            if isinstance(rule, Audited):
                cases.append(pytest.param(rule, id=f"{name}-{method}"))
    for name, rule in ADMIN_URLS.items():
        if isinstance(rule, Audited):
            cases.append(pytest.param(rule, id=name))
    for label, views in ADMIN_MODELS.items():
        for view, rule in views.items():
            if isinstance(rule, Audited):
                cases.append(pytest.param(rule, id=f"admin-{label}-{view}"))
        for action, rule in views.get("actions", {}).items():
            cases.append(pytest.param(rule, id=f"admin-{label}-action-{action}"))
    return cases


@pytest.mark.django_db
@pytest.mark.parametrize("rule", _audited_cases())
def test_each_change_or_pixel_hand_out_writes_its_audit_events(rule: Audited, tmp_path):
    world = build_world(tmp_path)
    if rule.prepare:
        rule.prepare(world)
    body = rule.body(world) if rule.body else None
    path = rule.path(world)
    client = APIClient()
    user = world.users[rule.user]
    client.force_login(user)
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    kwargs = {"format": "multipart" if rule.multipart else "json"} if body is not None else {}
    if rule.content_type:
        kwargs = {"content_type": rule.content_type}
    response = getattr(client, rule.method)(path, body, **kwargs)
    if response.streaming:
        b"".join(response.streaming_content)

    assert response.status_code in rule.status, (response.status_code, response.content[:500])
    if not response.streaming and b"errornote" in response.content:
        pytest.fail(f"the admin form was refused: {response.content[:2000]!r}")
    events = list(AuditEvent.objects.filter(id__gt=last).select_related("site"))
    assert Counter(e.action for e in events) == Counter(rule.actions), [
        (e.action, e.target) for e in events
    ]
    actors = {(e.action, e.actor_id) for e in events}
    assert actors == {(a, None if a in rule.by_system else user.pk) for a in rule.actions}
    sites = rule.site if isinstance(rule.site, dict) else dict.fromkeys(rule.actions, rule.site)
    assert {(e.action, e.site.slug if e.site else None) for e in events} == set(sites.items())
