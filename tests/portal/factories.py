"""Small factories for site data: sites, users with roles, images (with a real DICOM file on
disk), model versions and predictions scored the way the portal scores them."""

import hashlib
import itertools
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from PIL import Image as PILImage

from portal.accounts.services import membership_grant
from portal.ingest.archive import Source
from portal.ingest.models import Image, Site, Upload
from portal.ingest.services import upload_create, upload_process
from portal.predictions.models import ModelVersion, Prediction
from portal.predictions.services import outlier_score
from portal.review.services import review_submit
from portal.validation.exports import export_write
from portal.validation.models import ValidationSetVersion
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.dicom_files import make_dicom

_seq = itertools.count(1)
PASSWORD = "review-password-123"
CARD = {"expected_error_months": {"overall": 6.0, "1-3 F": 3.0, "1-3 M": 3.0}}


def site(slug: str, *, double_reading: bool = False, blind_reading: bool = False) -> Site:
    return Site.objects.create(
        slug=slug, name=slug.title(), double_reading=double_reading, blind_reading=blind_reading
    )


def user(username: str, role: str | None = None, *sites: Site):
    account = get_user_model().objects.create_user(username, password=PASSWORD)
    for s in sites:
        membership_grant(actor=None, user=account, site=s, role=role)
    return account


def model_version(name: str = "m1", *, active: bool = True, card: dict | None = None):
    return ModelVersion.objects.create(
        name=name,
        architecture="ca_resnet18",
        input_size=64,
        path=f"models/{name}",
        sha256="0" * 64,
        card=card or CARD,
        is_active=active,
    )


def image(s: Site, *, age_days: int = 1000, sex: str = "F", dicom: bool = False) -> Image:
    """An image row; with `dicom`, a real (small) DICOM file stored where the row says."""
    upload = Upload.objects.filter(site=s).first() or Upload.objects.create(site=s, source="cli")
    n = next(_seq)
    img = Image(
        site=s,
        upload=upload,
        size_bytes=1,
        sha256=f"{n:064x}",
        sop_instance_uid=f"2.25.{n}",
        study_instance_uid=f"2.25.{n}1",
        series_instance_uid=f"2.25.{n}2",
        patient_pseudonym=f"P{n}",
        sex=sex,
        age_days=age_days,
        age_source="birthdate",
        modality="DX",
        view_position="PA",
        rows=64,
        columns=64,
        photometric_interpretation="MONOCHROME2",
        bits_stored=12,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
    )
    img.file = f"images/{s.slug}/{img.uuid}.dcm"
    if dicom:
        make_dicom(Path(settings.DATA_DIR) / img.file, sex=sex)
    img.save()
    return img


def ingested(
    s: Site, folder: Path, *, birth: str, study: str, patient: str, sex: str = "F"
) -> Image:
    """A film through the real ingest path (de-identified, date-shifted per patient, aged from
    `birth` and `study`, YYYYMMDD), one upload of its own; its image row."""
    path = make_dicom(
        folder / f"film-{next(_seq)}.dcm",
        birth_date=birth,
        study_date=study,
        sex=sex,
        extra={"PatientID": patient},
    )
    upload = upload_process(
        upload=upload_create(site=s, source=Upload.Source.CLI), sources=[Source.given(path)]
    )
    return Image.objects.get(upload=upload)


def prediction(img: Image, version: ModelVersion, *, age_days: int, heatmap: bool = False):
    """A stored prediction with its residual and score (and a heatmap PNG when asked)."""
    path = ""
    if heatmap:
        path = f"heatmaps/{version.name}/{img.uuid}.png"
        target = Path(settings.DATA_DIR) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        PILImage.fromarray(np.zeros((16, 16), np.uint8)).save(target)
    return Prediction.objects.create(
        image=img,
        site=img.site,
        model_version=version,
        age_days=age_days,
        residual_days=age_days - img.age_days,
        score=outlier_score(
            card=version.card, predicted_days=age_days, recorded_days=img.age_days, sex=img.sex
        ),
        heatmap=path,
    )


def confirm(img: Image, reviewer) -> None:
    """`reviewer` confirms the image's recorded age, at its current revision."""
    img.refresh_from_db()
    review_submit(
        image=img,
        reviewer=reviewer,
        decision="confirm",
        age_days=None,
        reason="",
        comment="",
        expected_revision=img.revision,
    )


def frozen_set(slug: str, *, reviewer) -> ValidationSetVersion:
    """A new site with one confirmed image (a real DICOM file and its sha256), in a set
    `set-<slug>` frozen as version 1."""
    s = site(slug)
    img = image(s, age_days=1500, dicom=True)
    stored = (Path(settings.DATA_DIR) / img.file).read_bytes()
    Image.objects.filter(pk=img.pk).update(sha256=hashlib.sha256(stored).hexdigest())
    confirm(img, reviewer)
    chosen = validation_set_create(name=f"set-{slug.strip('-_')}", sites=[s])
    return validation_set_freeze(validation_set=chosen)


class _Undo(Exception):
    pass


def foreign_export(out: Path, *, slug: str, reviewer) -> Path:
    """A signed export (this portal's key) of a one-image set that this portal does not hold:
    made here, then its rows rolled back (the ZIP stays), as another portal would send it."""
    try:
        with transaction.atomic():
            export_write(version=frozen_set(slug, reviewer=reviewer), out=out)
            raise _Undo
    except _Undo:
        pass
    return out
