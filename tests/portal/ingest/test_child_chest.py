"""Only a human child's chest gets in: species, breed and body part are checked from the
attributes (real films where it matters: pydicom-data's RG1_UNCR chest film relabelled); a
PatientAge that the dates contradict is stored with a warning that the API, the CLI and the
upload page show."""

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from rest_framework.test import APIClient

from portal.ingest.archive import Source
from portal.ingest.dicom import (
    BODY_PART_TERMS,
    NOT_HUMAN,
    WARNING_TEXTS,
    Rejected,
    check_subject,
    chest_like,
    compute_age,
    file_warnings,
)
from portal.ingest.models import Image, Upload, UploadFile
from portal.ingest.services import upload_create, upload_process
from tests.conftest import manage
from tests.dicom_files import BIRTH_DATE, STUDY_DATE, make_dicom
from tests.portal.ingest.test_services import ingest

pytestmark = pytest.mark.django_db(transaction=True)

RG1 = Path(get_testdata_file("RG1_UNCR.dcm"))  # a real CR chest film, uncompressed
# Values a pet's record could hold: none may reach a reason or a warning.
CAT = {"PatientSpeciesDescription": "Feline", "PatientBreedDescription": "Tabby of Mrs Smith"}
HUMAN_CODE = ("SCT", "337915000", "Homo sapiens")
AGE_WARNING = "PatientAge says 15 years; the dates say 4 years 10 months (the dates are used)"


def _code(scheme: str, value: str, meaning: str) -> Sequence:
    item = Dataset()
    item.CodingSchemeDesignator, item.CodeValue, item.CodeMeaning = scheme, value, meaning
    return Sequence([item])


def _real_film(path: Path, film: int = 0, **attrs) -> Path:
    """RG1_UNCR as a child's film (the dates of tests.dicom_files: 4 y 10 m) in its own
    encoding, with `attrs` set (None deletes one); `film` changes one pixel, so that films
    made from it are not duplicates of each other."""
    ds = pydicom.dcmread(RG1)
    ds.PatientBirthDate, ds.StudyDate = BIRTH_DATE, STUDY_DATE
    ds.SOPInstanceUID = generate_uid()
    pixels = bytearray(ds.PixelData)
    pixels[0:2] = film.to_bytes(2, "little")
    ds.PixelData = bytes(pixels)
    for keyword, value in attrs.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


# -- the rules, attribute by attribute -------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["CHEST", "chest ", " Thorax", "LUNG", "CHEST PA", "PA CHEST", "THORAX AP", "TORAX", "TÓRAX"]
    + ["Tórax PA", "TORACE", "CHEST_PA", "PEDIATRIC CHEST", "CHEST (THORAX)"],
)
def test_chest_values_are_chest_like(value):
    assert chest_like(value)


@pytest.mark.parametrize(
    "value",
    ["HAND", "hand", "EXTREMITY", "SKULL", "ABDOMEN", "TSPINE", "THORACIC SPINE", "RIB"]
    + ["CHESTABDOMEN", "CHESTABDPELVIS", "CHEST_TO_PELVIS", "CHEST/ABD", "NECKCHEST", "PA"]
    + ["WHOLEBODY", "BABYGRAM", "XYZ"],
)
def test_other_regions_and_unknown_values_are_not_chest_like(value):
    assert not chest_like(value)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("HAND", "HAND"),
        (" hand ", "HAND"),
        ("CHESTABDOMEN", "CHESTABDOMEN"),
        ("MANO DE PEREZ", "(not a defined term)"),  # described, never quoted
        ("CHEST/ABD", "(not a defined term)"),
    ],
)
def test_body_part_reason_quotes_only_defined_terms(value, named):
    ds = Dataset()
    ds.BodyPartExamined = value
    with pytest.raises(Rejected) as refused:
        check_subject(ds)
    assert str(refused.value) == (
        f"BodyPartExamined {named} is not the chest (expected CHEST, THORAX or LUNG); "
        "only children's chest films"
    )
    assert "PEREZ" not in str(refused.value)
    assert "HAND" in BODY_PART_TERMS
    assert "THORAX" not in BODY_PART_TERMS


@pytest.mark.parametrize(
    "attrs",
    [
        {"PatientSpeciesDescription": "Feline"},
        {"PatientSpeciesDescription": "Canis lupus familiaris"},
        {"PatientSpeciesCodeSequence": _code("SCT", "448169003", "Felis catus")},
        {"PatientBreedDescription": "Tabby"},
        {"PatientBreedCodeSequence": _code("SCT", "132432007", "Beagle dog breed")},
        {"BreedRegistrationSequence": Sequence([Dataset()])},
        {"PatientSpeciesDescription": "Homo sapiens", "PatientBreedDescription": "Tabby"},
        {"PatientSpeciesDescription": "Homo sapiens"}
        | {"PatientSpeciesCodeSequence": _code("SCT", "448169003", "Felis catus")},
    ],
    ids=str,
)
def test_non_human_species_or_any_breed_is_refused(attrs):
    ds = Dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    if "BreedRegistrationSequence" in ds:
        ds.BreedRegistrationSequence[0].BreedRegistrationNumber = "REG-12345"
    with pytest.raises(Rejected) as refused:
        check_subject(ds)
    assert str(refused.value) == NOT_HUMAN


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"PatientSpeciesDescription": "Homo sapiens"},
        {"PatientSpeciesDescription": " human "},
        {"PatientSpeciesCodeSequence": _code(*HUMAN_CODE)},
        {"PatientSpeciesCodeSequence": _code("SRT", "L-85B00", "Homo sapiens")},
        # Empty elements say nothing: some systems write every Patient Module attribute.
        {"PatientSpeciesDescription": "", "PatientBreedDescription": ""}
        | {"PatientBreedCodeSequence": Sequence(), "BreedRegistrationSequence": Sequence()},
        {"BodyPartExamined": ""},
        {"BodyPartExamined": "  "},
    ],
    ids=str,
)
def test_human_subjects_and_empty_attributes_are_accepted(attrs):
    ds = Dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    check_subject(ds)


def _dates_and(patient_age: str) -> Dataset:
    ds = Dataset()
    ds.PatientBirthDate, ds.StudyDate, ds.PatientAge = BIRTH_DATE, STUDY_DATE, patient_age
    return ds


# The dates say 1772 days: 4 years 10 months, 58 months, 253 weeks 1 day.
@pytest.mark.parametrize(
    "patient_age", ["004Y", "005Y", "003Y", "058M", "057M", "059M", "253W", "252W", "xyz"]
)
def test_no_warning_when_patient_age_agrees_with_the_dates_within_one_unit(patient_age):
    ds = _dates_and(patient_age)
    age = compute_age(ds)
    assert (age.days, age.source) == (1772, "birthdate")
    assert file_warnings(ds, age) == ()


@pytest.mark.parametrize(
    ("patient_age", "warning"),
    [
        ("015Y", "PatientAge says 15 years; the dates say 4 years 10 months"),
        ("002Y", "PatientAge says 2 years; the dates say 4 years 10 months"),
        ("001Y", "PatientAge says 1 year; the dates say 4 years 10 months"),
        ("018Y", "PatientAge says 18 years; the dates say 4 years 10 months"),
        ("060M", "PatientAge says 60 months; the dates say 58 months"),
        ("010W", "PatientAge says 10 weeks; the dates say 253 weeks 1 day"),
        ("030D", "PatientAge says 30 days; the dates say 1772 days"),
    ],
)
def test_patient_age_that_disagrees_with_the_dates_is_a_warning(patient_age, warning):
    ds = _dates_and(patient_age)
    age = compute_age(ds)
    assert age.days == 1772  # the dates are used, also when PatientAge is out of scope
    assert file_warnings(ds, age) == (f"{warning} (the dates are used)",)


def test_every_warning_text_is_listed_in_one_place():
    assert WARNING_TEXTS[0].format(patient_age="15 years", dates="4 years 10 months") == AGE_WARNING


def test_patient_age_alone_gives_no_warning():
    ds = Dataset()
    ds.PatientAge = "015Y"
    assert file_warnings(ds, compute_age(ds)) == ()


# -- through ingest, with real films -------------------------------------------------------


def test_real_film_of_a_cat_or_a_hand_is_refused_and_a_human_chest_accepted(site, tmp_path):
    folder = tmp_path / "in"
    _real_film(folder / "1-cat.dcm", **CAT)
    _real_film(
        folder / "2-coded-cat.dcm",
        PatientSpeciesCodeSequence=_code("SCT", "448169003", "Felis catus"),
    )
    _real_film(folder / "3-breed.dcm", PatientBreedCodeSequence=_code("SCT", "132432007", "Beagle"))
    _real_film(folder / "4-hand.dcm", BodyPartExamined="HAND")
    _real_film(
        folder / "5-human.dcm",
        film=5,
        PatientSpeciesDescription="Homo sapiens",
        PatientSpeciesCodeSequence=_code(*HUMAN_CODE),
    )
    _real_film(folder / "6-chest-pa.dcm", film=6, BodyPartExamined="CHEST PA")
    _real_film(folder / "7-no-body-part.dcm", film=7, BodyPartExamined=None)

    report = ingest(site, folder)

    hand = (
        "BodyPartExamined HAND is not the chest (expected CHEST, THORAX or LUNG); "
        "only children's chest films"
    )
    assert report["rejected"] == [
        {"file": "1-cat.dcm", "reason": NOT_HUMAN},
        {"file": "2-coded-cat.dcm", "reason": NOT_HUMAN},
        {"file": "3-breed.dcm", "reason": NOT_HUMAN},
        {"file": "4-hand.dcm", "reason": hand},
    ]
    accepted = ["5-human.dcm", "6-chest-pa.dcm", "7-no-body-part.dcm"]
    assert [line["file"] for line in report["accepted"]] == accepted
    assert all("warning" not in line for line in report["accepted"])  # none to give
    stored = UploadFile.objects.values_list("reason", "warning")
    assert not any(v in r + w for r, w in stored for v in (*CAT.values(), "Felis", "Beagle"))
    assert Image.objects.count() == 3


def test_patient_age_disagreement_is_accepted_with_a_warning_in_the_api_report(
    site, admin_user, tmp_path
):
    folder = tmp_path / "in"
    _real_film(folder / "a.dcm", film=1, PatientAge="015Y")  # the dates: 4 y 10 m
    _real_film(folder / "b.dcm", film=2, PatientAge="004Y")  # agrees
    upload = upload_process(
        upload=upload_create(site=site, source=Upload.Source.CLI),
        sources=[Source.given(folder)],
    )
    assert (upload.accepted_count, upload.rejected_count) == (2, 0)

    client = APIClient()
    client.force_authenticate(admin_user)
    lines = client.get(f"/api/uploads/{upload.pk}/files/").json()["results"]
    assert [(line["file"], line["outcome"], line["warning"]) for line in lines] == [
        ("#1", "accepted", AGE_WARNING),
        ("#2", "accepted", ""),
    ]
    assert (lines[0]["age_days"], lines[0]["age_source"]) == (1772, "birthdate")
    # By the outcome filter the page uses, a warned file is still an accepted one.
    accepted = client.get(f"/api/uploads/{upload.pk}/files/", {"outcome": "accepted"}).json()
    assert len(accepted["results"]) == 2


def test_a_duplicate_keeps_its_warning(site, tmp_path):
    film = make_dicom(tmp_path / "a.dcm", patient_age="015Y", seed=7)
    report = ingest(site, film, film)
    assert report["accepted"][0]["warning"] == AGE_WARNING
    assert report["duplicates"][0]["warning"] == AGE_WARNING


def test_cli_prints_each_warning_with_the_file_and_counts_them(tmp_path, data_dir):
    folder = tmp_path / "export"
    make_dicom(folder / "a.dcm", patient_age="015Y")
    make_dicom(folder / "b.dcm", patient_age="058M")
    make_dicom(folder / "c.dcm", extra={"PatientSpeciesDescription": "Feline"})

    result = manage("ingest", str(folder), "--site", "east", "--create-site", data_dir=data_dir)

    assert result.returncode == 1, result.stderr  # c.dcm is rejected; a warning is not
    assert f"warning a.dcm (#1): {AGE_WARNING}\n" in result.stderr
    assert "warning b.dcm" not in result.stderr
    assert f"rejected c.dcm (#3): {NOT_HUMAN}" in result.stderr
    assert "Feline" not in result.stderr + result.stdout
    assert "2 accepted, 0 duplicates, 1 rejected, 1 with warnings" in result.stdout

    again = manage(
        "ingest",
        str(folder / "a.dcm"),
        "--site",
        "west",
        "--create-site",
        "--json",
        data_dir=data_dir,
    )
    assert again.returncode == 0, again.stderr  # warnings alone exit 0
    (line,) = json.loads(again.stdout)["accepted"]
    assert line["warning"] == AGE_WARNING


def test_upload_page_has_a_warning_column(client, admin_user, site):
    client.force_login(admin_user)
    page = client.get("/uploads/new/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<th>Reason</th><th>Warning</th>" in html


@pytest.mark.parametrize(
    "codes",
    [
        [("SCT", "51185008", "Thorax")],
        [("SRT", "T-D3000", "Chest")],
        [("SCT", "39607008", "Lung")],
        [("99LOCAL", "CXR1", "Chest PA")],  # a local code whose meaning names the chest
        [("SCT", "", "")],  # an item without a code says nothing
    ],
    ids=str,
)
def test_an_anatomic_region_coded_as_the_chest_is_accepted(codes):
    ds = Dataset()
    ds.BodyPartExamined = "CHEST"
    ds.AnatomicRegionSequence = Sequence([_code(*c)[0] for c in codes])
    check_subject(ds)


@pytest.mark.parametrize(
    ("code", "quoted"),
    [
        (("SCT", "85562004", "Hand"), "SCT 85562004"),
        (("SRT", "T-D8700", "Hand"), "SRT T-D8700"),
        (("SCT", "416949008", "Abdomen and pelvis"), "SCT 416949008"),
        (("99LOCAL", "Perez knee", "Knee of Mr Perez"), "(a code)"),  # never quoted
    ],
    ids=str,
)
def test_an_anatomic_region_coded_as_another_part_is_refused(code, quoted):
    """The coded body part refuses a film whose Body Part Examined is missing or says the
    chest: a hand coded in the sequence is a hand. Only a plain code is quoted."""
    ds = Dataset()
    ds.AnatomicRegionSequence = _code(*code)
    with pytest.raises(Rejected) as refused:
        check_subject(ds)
    assert str(refused.value).startswith(f"AnatomicRegionSequence codes {quoted}, not the chest")
    assert "Perez" not in str(refused.value)
    assert "PEREZ" not in str(refused.value)


def test_a_real_film_coded_as_a_hand_is_rejected_through_the_upload(site, tmp_path):
    folder = tmp_path / "films"
    _real_film(folder / "1-hand.dcm", AnatomicRegionSequence=_code("SCT", "85562004", "Hand"))
    chest = _code("SRT", "T-D3000", "Chest")
    _real_film(folder / "2-chest.dcm", film=1, AnatomicRegionSequence=chest)
    report = ingest(site, folder)
    assert [line["file"] for line in report["rejected"]] == ["1-hand.dcm"]
    assert report["rejected"][0]["reason"].startswith(
        "AnatomicRegionSequence codes SCT 85562004, not the chest"
    )
    assert [line["file"] for line in report["accepted"]] == ["2-chest.dcm"]
