"""People, dates and label noise, and the DICOM data set that carries them (fake but realistic
PHI, so that ingest's de-identification is exercised)."""

import datetime as dt
import math

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from inference_worker.ages import AGE_LIMIT_DAYS, MAX_AGE_YEARS, completed_months, year_days
from inference_worker.synthetic.growth import (
    PART_BUILD_SD,
    SIZE_SD,
    SIZE_TEMPO_CORRELATION,
    THYMUS_BUILD_SD,
    Child,
)
from inference_worker.synthetic.profiles import SiteProfile

_FIRST = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Mateo",
    "Sofia",
    "Lucas",
    "Mia",
    "Amir",
    "Chloe",
    "Kenji",
    "Zara",
    "Ivan",
    "Leila",
    "Tomas",
    "Nia",
    "Oskar",
    "Priya",
    "Yusuf",
]
_LAST = [
    "Garcia",
    "Smith",
    "Nguyen",
    "Okafor",
    "Kowalski",
    "Haddad",
    "Tanaka",
    "Johansson",
    "Rossi",
    "Fernandes",
    "Murphy",
    "Schmidt",
    "Ivanova",
    "Patel",
    "Dubois",
    "Kim",
]
_STREETS = ["Maple Street", "Harbour Road", "Elm Avenue", "Station Lane", "Hill Crescent"]
_PHYSICIANS = ["Reyes^Ana", "Brennan^Tom", "Osei^Kwame", "Lindqvist^Eva", "Moreau^Luc"]


def make_child(
    rng: np.random.Generator, index: int, site: str, build: np.random.Generator
) -> Child:
    """A child from `rng` (identity, sex, birth date, overall build: the caller draws the ages
    from it next) and `build` (maturity tempo and the parts' own build factors)."""
    sex = "M" if rng.random() < 0.5 else "F"
    patient_id = f"{site[:2].upper()}{rng.integers(10**6, 10**7)}-{index}"
    name = f"{rng.choice(_LAST)}^{rng.choice(_FIRST)}"
    birth_date = dt.date(2000, 1, 1) + dt.timedelta(days=int(rng.integers(0, 8000)))
    size = float(np.clip(rng.normal(1, SIZE_SD), 0.85, 1.15))
    # Early maturers are the taller children of their age: the tempo leans on the size.
    r = SIZE_TEMPO_CORRELATION
    tempo = r * (size - 1) / SIZE_SD + math.sqrt(1 - r * r) * build.normal(0, 1)
    return Child(
        patient_id=patient_id,
        name=name,
        sex=sex,
        birth_date=birth_date,
        size=size,
        proportion=float(np.clip(rng.normal(1, 0.05), 0.88, 1.12)),
        ctr_offset=float(np.clip(rng.normal(0, 0.025), -0.06, 0.06)),
        rib_offset_deg=float(rng.normal(0, 2.5)),
        density=float(np.clip(rng.normal(1, 0.08), 0.8, 1.2)),
        tempo=float(np.clip(tempo, -2.5, 2.5)),
        vertebra_build=_build_factor(build, PART_BUILD_SD),
        clavicle_build=_build_factor(build, PART_BUILD_SD),
        humerus_build=_build_factor(build, PART_BUILD_SD),
        thymus_build=_build_factor(build, THYMUS_BUILD_SD),
    )


def _build_factor(rng: np.random.Generator, sd: float) -> float:
    """A log-normal factor around 1, cut at 2.5 SD."""
    return float(np.exp(np.clip(rng.normal(0, sd), -2.5 * sd, 2.5 * sd)))


def corrupt_age(true_days: int, birth: dt.date, rng: np.random.Generator) -> tuple[int, str]:
    """A plausible clerical error: wrong birth year, day and month swapped, or months typed as
    years. Always differs from the truth by at least 60 days and stays within 0-18 years."""
    study = birth + dt.timedelta(days=true_days)
    kinds = ["wrong_year", "swapped_day_month", "months_as_years"]
    for kind in rng.permutation(kinds):
        if kind == "wrong_year":
            shift = int(rng.choice([-3, -2, -1, 1, 2, 3]))
            try:
                wrong_birth = birth.replace(year=birth.year + shift)
            except ValueError:
                wrong_birth = birth.replace(year=birth.year + shift, day=28)
            recorded = (study - wrong_birth).days
        elif kind == "swapped_day_month":
            if birth.day > 12 or birth.day == birth.month:
                continue
            recorded = (study - birth.replace(month=birth.day, day=birth.month)).days
        else:
            months = completed_months(true_days)
            if not 1 <= months < MAX_AGE_YEARS:
                continue
            recorded = year_days(months)
        if 0 <= recorded < AGE_LIMIT_DAYS and abs(recorded - true_days) >= 60:
            return recorded, str(kind)
    recorded = true_days + 400 if true_days + 400 < AGE_LIMIT_DAYS else true_days - 400
    return recorded, "wrong_year"


def make_dataset(
    child: Child,
    study_date: dt.date,
    recorded_days: int,
    pixels: np.ndarray,
    profile: SiteProfile,
    rng: np.random.Generator,
    use_patient_age: bool,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = (
        "1.2.840.10008.5.1.4.1.1.1.1" if profile.modality == "DX" else "1.2.840.10008.5.1.4.1.1.1"
    )
    ds.SOPInstanceUID, ds.StudyInstanceUID = generate_uid(), generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = profile.modality
    ds.Manufacturer = profile.manufacturer
    ds.InstitutionName = profile.institution
    ds.InstitutionAddress = f"{rng.integers(1, 300)} {rng.choice(_STREETS)}"
    ds.ReferringPhysicianName = str(rng.choice(_PHYSICIANS))
    ds.PatientName = child.name
    ds.PatientID = child.patient_id
    ds.PatientSex = child.sex
    ds.PatientAddress = f"{rng.integers(1, 999)} {rng.choice(_STREETS)}"
    ds.AccessionNumber = f"A{rng.integers(10**7, 10**8)}"
    ds.StudyID = str(rng.integers(1000, 9999))
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date.strftime("%Y%m%d")
    ds.StudyTime = f"{rng.integers(7, 19):02d}{rng.integers(0, 60):02d}00"
    if use_patient_age:
        ds.PatientAge = f"{round(recorded_days / 7):03d}W"
    else:
        recorded_birth = study_date - dt.timedelta(days=recorded_days)
        ds.PatientBirthDate = recorded_birth.strftime("%Y%m%d")
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA" if rng.random() < 0.8 else "AP"
    ds.PixelSpacing = [profile.spacing_mm, profile.spacing_mm]
    ds.ImagerPixelSpacing = [profile.spacing_mm, profile.spacing_mm]
    if profile.magnification != 1:
        ds.EstimatedRadiographicMagnificationFactor = profile.magnification
    ds.BurnedInAnnotation = "YES" if profile.marker else "NO"
    block = ds.private_block(0x0029, "PHANTOM SITE INFO", create=True)
    block.add_new(0x01, "LO", f"operator {rng.choice(_FIRST)}")
    block.add_new(0x02, "LO", child.patient_id)
    ds.RequestAttributesSequence = Sequence([Dataset()])
    ds.RequestAttributesSequence[0].RequestedProcedureID = f"RP{rng.integers(10**5, 10**6)}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = profile.photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, profile.bits_stored, profile.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    syntax = profile.transfer_syntaxes[int(rng.integers(len(profile.transfer_syntaxes)))]
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax)
    return ds
