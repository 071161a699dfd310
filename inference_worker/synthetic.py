"""Synthetic pediatric chest phantoms written as DICOM files, with a manifest.

    python -m inference_worker.synthetic --out DIR --count N --seed S --site-profile NAME
                                         [--label-noise FRACTION] [--workers N]

What they are: a frontal chest radiograph drawn from a handful of anatomical shapes whose sizes
and proportions follow a child's growth: the thorax widens and lengthens, the cardiothoracic ratio
falls from about 0.6 in infancy to about 0.5, the ribs turn from horizontal to oblique, vertebral
bodies grow taller, clavicles lengthen, the humeral head ossifies and its growth plate closes, the
thymus shadow fades, bones grow denser. Each child has its own size and proportions, so age is
not a fixed function of the picture. Site profiles differ in acquisition (MONOCHROME1 or 2, bit
depth, pixel spacing, matrix, exposure, noise, blur, collimation, positioning, burned-in markers,
transfer syntax), so that a second site is a real domain shift. Files carry fake but realistic
patient names, IDs, birth and study dates, institutions and private tags, so that ingest's
de-identification is exercised.

What they are not: radiographs of children. No real anatomy, pathology, or scatter physics; a
model trained on them learns the growth rules written here, and says nothing about real children.

Torch-free (numpy and pydicom), so the portal may use it to seed demo data.
"""

import argparse
import csv
import datetime as dt
import logging
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)
from tqdm import tqdm

# pylibjpeg-openjpeg logs every tile it encodes at INFO.
logging.getLogger("openjpeg").setLevel(logging.WARNING)

DAYS_PER_YEAR = 365.25
MAX_AGE_DAYS = int(18 * DAYS_PER_YEAR) - 1
MANIFEST_FIELDS = [
    "file",
    "patient",
    "true_age_days",
    "recorded_age_days",
    "sex",
    "site",
    "label_corrupted",
    "corruption",
]


@dataclass(frozen=True)
class SiteProfile:
    name: str
    institution: str
    modality: str
    manufacturer: str
    photometric: str
    bits_stored: int
    spacing_mm: float
    rows: int
    columns: int
    transfer_syntaxes: tuple[str, ...]
    exposure: float  # overall brightness of tissue
    contrast: float  # gamma of the detector response
    noise: float  # standard deviation, fraction of full scale
    blur_mm: float
    collimation: float  # fraction of the field exposed (1 = none)
    rotation_deg: float  # positioning spread
    marker: bool  # burned-in side marker
    patient_age_fraction: float  # files whose age is given by PatientAge, not a birth date


PROFILES = {
    "north": SiteProfile(
        name="north",
        institution="North Valley Children's Hospital",
        modality="DX",
        manufacturer="Phantom Imaging",
        photometric="MONOCHROME2",
        bits_stored=12,
        spacing_mm=0.6,
        rows=512,
        columns=512,
        transfer_syntaxes=(ExplicitVRLittleEndian,),
        exposure=1.0,
        contrast=1.0,
        noise=0.008,
        blur_mm=0.6,
        collimation=0.94,
        rotation_deg=2.0,
        marker=False,
        patient_age_fraction=0.0,
    ),
    "south": SiteProfile(
        name="south",
        institution="Southbay Regional Medical Center",
        modality="CR",
        manufacturer="Acme Radiography",
        photometric="MONOCHROME1",
        bits_stored=10,
        spacing_mm=0.7,
        rows=448,
        columns=512,
        transfer_syntaxes=(JPEG2000Lossless, RLELossless),
        exposure=0.85,
        contrast=1.35,
        noise=0.02,
        blur_mm=1.2,
        collimation=0.86,
        rotation_deg=5.0,
        marker=True,
        patient_age_fraction=0.15,
    ),
    "east": SiteProfile(
        name="east",
        institution="Eastside University Hospital",
        modality="DX",
        manufacturer="Orient Medical",
        photometric="MONOCHROME2",
        bits_stored=16,
        spacing_mm=0.5,
        rows=600,
        columns=560,
        transfer_syntaxes=(RLELossless,),
        exposure=1.1,
        contrast=0.8,
        noise=0.012,
        blur_mm=0.8,
        collimation=0.98,
        rotation_deg=3.0,
        marker=True,
        patient_age_fraction=0.05,
    ),
}

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


@dataclass(frozen=True)
class Child:
    """One child's individual build, fixed across their examinations."""

    patient_id: str
    name: str
    sex: str
    birth_date: dt.date
    size: float  # overall scale around the population growth curve
    proportion: float  # thorax height / width around the curve
    ctr_offset: float
    rib_offset_deg: float
    density: float


# ---- growth rules (years -> mm or ratio) -------------------------------------------------


def thorax_width_mm(years: float, sex: str) -> float:
    width = 110 + 170 * (years / 18) ** 0.6
    if sex == "F":  # girls end about 6% narrower, diverging through puberty
        width *= 1 - 0.06 * _smoothstep(10, 16, years)
    return width


def cardiothoracic_ratio(years: float) -> float:
    return 0.60 - 0.10 * (1 - math.exp(-years / 3))


def rib_angle_deg(years: float) -> float:
    return 4 + 26 * (1 - math.exp(-years / 6))


def vertebral_height_mm(years: float) -> float:
    return 6 + 16 * (years / 18) ** 0.8


def clavicle_length_mm(years: float) -> float:
    return 40 + 110 * (years / 18) ** 0.8


def humeral_head_radius_mm(years: float) -> float:
    """The ossified head appears at a few months and grows to adult size by mid-teens."""
    return 0.0 if years < 0.3 else 2 + 19 * _smoothstep(0.3, 15, years)


def thymus_strength(years: float) -> float:
    return math.exp(-years / 1.6)


def bone_density(years: float) -> float:
    return 0.55 + 0.45 * math.sqrt(years / 18)


def _smoothstep(a: float, b: float, x: float) -> float:
    t = min(1.0, max(0.0, (x - a) / (b - a)))
    return t * t * (3 - 2 * t)


# ---- drawing --------------------------------------------------------------------------------


def _soft(d: np.ndarray, edge: float) -> np.ndarray:
    """1 inside (d < 0), 0 outside, a smooth edge `edge` wide."""
    return 1.0 / (1.0 + np.exp(np.clip(d / max(edge, 1e-3), -30, 30)))


def _ellipse(x, y, cx, cy, rx, ry, edge=1.5) -> np.ndarray:
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return _soft((r - 1) * min(rx, ry), edge)


def _box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1:
        return image
    out = image
    for axis in (0, 1):
        padded = np.pad(
            out, [(radius + 1, radius) if a == axis else (0, 0) for a in (0, 1)], mode="edge"
        )
        c = np.cumsum(padded, axis=axis)
        hi = np.take(c, np.arange(2 * radius + 1, c.shape[axis]), axis=axis)
        lo = np.take(c, np.arange(0, c.shape[axis] - 2 * radius - 1), axis=axis)
        out = (hi - lo) / (2 * radius + 1)
    return out


def render(
    child: Child, years: float, profile: SiteProfile, rng: np.random.Generator
) -> np.ndarray:
    """Density map of one examination (0 = air, larger = more attenuating), rows x columns."""
    s = profile.spacing_mm
    rows, cols = profile.rows, profile.columns
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    x0 = (xx - cols / 2) * s
    y0 = (yy - rows / 2) * s
    # Positioning: rotation and shift vary by examination and site.
    theta = math.radians(rng.normal(0, profile.rotation_deg))
    tx, ty = rng.normal(0, 6), rng.normal(0, 6)
    x = math.cos(theta) * (x0 - tx) + math.sin(theta) * (y0 - ty)
    y = -math.sin(theta) * (x0 - tx) + math.cos(theta) * (y0 - ty)

    w = thorax_width_mm(years, child.sex) * child.size
    h = w * (0.78 + 0.22 * (years / 18)) * child.proportion  # barrel chest -> taller chest
    top = -0.45 * h
    bone = bone_density(years) * child.density
    density = np.zeros((rows, cols), dtype=np.float32)

    # Soft tissue of the trunk, shoulders and neck.
    density += 1.0 * _ellipse(x, y, 0, 0.12 * h, 0.66 * w, 0.95 * h, edge=6)
    density += 0.8 * _ellipse(x, y, 0, top - 0.05 * h, 0.58 * w, 0.16 * h, edge=6)
    density += 0.7 * _ellipse(x, y, 0, top - 0.35 * h, 0.12 * w, 0.3 * h, edge=4)
    # Lungs (air) with diaphragm domes.
    for side in (-1, 1):
        lung = _ellipse(x, y, side * 0.24 * w, 0.02 * h, 0.21 * w, 0.47 * h, edge=3)
        density -= 0.75 * lung
    # Mediastinum, widened at the top by the thymus in infants.
    density += 0.45 * _ellipse(x, y, 0, 0.0, 0.09 * w, 0.5 * h, edge=3)
    thymus = thymus_strength(years)
    if thymus > 0.02:
        for side in (-1, 1):
            density += (
                0.55
                * thymus
                * _ellipse(x, y, side * 0.1 * w, top + 0.22 * h, 0.12 * w, 0.16 * h, edge=3)
            )
    # Heart: width = CTR x thorax width, sitting to the patient's left (image right).
    ctr = cardiothoracic_ratio(years) + child.ctr_offset
    heart_w = ctr * w * 0.92
    density += 0.7 * _ellipse(x, y, 0.08 * w, 0.2 * h, heart_w / 2, 0.26 * h, edge=3)
    # Spine: vertebral bodies and discs down the midline.
    v_height = vertebral_height_mm(years) * child.size
    v_width = 0.075 * w + 6
    period = v_height * 1.3
    phase = np.mod(y - top, period)
    body = _soft(np.abs(x) - v_width / 2, 1.0) * _soft(phase - v_height, 0.8)
    density += 0.55 * bone * body * _soft(-(y - top + 0.15 * h), 2) * _soft(y - 0.62 * h, 2)
    # Ribs: ten pairs, posterior arcs descending laterally at the age's angle.
    slope = math.tan(math.radians(rib_angle_deg(years) + child.rib_offset_deg))
    thickness = 0.028 * h + 1.0
    spacing = 0.085 * h
    for i in range(10):
        start_y = top + 0.06 * h + i * spacing
        for side in (-1, 1):
            lateral = side * x
            centre = start_y + slope * np.clip(lateral, 0, None) + 0.35 * lateral**2 / w
            band = _soft(np.abs(y - centre) - thickness / 2, 0.7)
            extent = _soft(v_width / 2 - lateral, 1) * _soft(lateral - 0.47 * w, 2)
            density += 0.32 * bone * band * extent
    # Clavicles: from the sternal notch out to the shoulders, lengthening with age.
    c_len = clavicle_length_mm(years) * child.size
    for side in (-1, 1):
        lateral = side * x - 0.04 * w
        centre = (
            top - 0.02 * h - 0.08 * lateral + 4 * np.sin(np.clip(lateral / c_len, 0, 1) * math.pi)
        )
        band = _soft(np.abs(y - centre) - (0.012 * w + 2), 0.8)
        density += 0.5 * bone * band * _soft(-lateral, 1) * _soft(lateral - c_len, 1.5)
    # Humeri: shafts at the sides, an ossified head appearing and a physis that closes.
    physis_gap = 3.0 * (1 - _smoothstep(14, 18, years))
    head_r = humeral_head_radius_mm(years) * child.size
    for side in (-1, 1):
        hx = side * (0.56 * w + 8)
        shaft_top = top + 0.02 * h
        shaft = _soft(np.abs(x - hx) - (0.035 * w + 3), 1) * _soft(shaft_top - y, 1)
        density += 0.6 * bone * shaft
        if head_r > 0:
            head = _ellipse(x, y, hx, shaft_top - physis_gap - head_r, head_r, head_r, edge=1)
            density += 0.6 * bone * head
    return np.clip(density, 0, None)


def acquire(density: np.ndarray, profile: SiteProfile, rng: np.random.Generator) -> np.ndarray:
    """Detector image (stored pixel values) from a density map, the way this site acquires."""
    rows, cols = density.shape
    signal = 1 - np.exp(-density * 1.1 * profile.exposure)  # bright where dense
    signal = _box_blur(
        _box_blur(signal, round(profile.blur_mm / profile.spacing_mm)),
        round(profile.blur_mm / profile.spacing_mm),
    )
    signal = np.clip(signal, 0, 1) ** profile.contrast
    signal = signal + rng.normal(0, profile.noise, signal.shape)
    # Collimation: outside the exposed field the detector sees no radiation (bright).
    margin_r, margin_c = (
        int(rows * (1 - profile.collimation) / 2),
        int(cols * (1 - profile.collimation) / 2),
    )
    if margin_r or margin_c:
        field = np.zeros_like(signal, dtype=bool)
        field[margin_r : rows - margin_r, margin_c : cols - margin_c] = True
        signal = np.where(field, signal, 0.97)
    if profile.marker:  # a burned-in side marker block in the upper corner
        r0, c0 = margin_r + 8, cols - margin_c - 40
        signal[r0 : r0 + 24, c0 : c0 + 6] = 1.0
        signal[r0 + 18 : r0 + 24, c0 : c0 + 18] = 1.0
    full = 2**profile.bits_stored - 1
    stored = np.clip(signal * 0.9 + 0.05, 0, 1) * full
    if profile.photometric == "MONOCHROME1":
        stored = full - stored
    return stored.round().astype(np.uint16)


# ---- people, dates and label noise ---------------------------------------------------------


def _make_child(rng: np.random.Generator, index: int, site: str) -> Child:
    sex = "M" if rng.random() < 0.5 else "F"
    return Child(
        patient_id=f"{site[:2].upper()}{rng.integers(10**6, 10**7)}-{index}",
        name=f"{rng.choice(_LAST)}^{rng.choice(_FIRST)}",
        sex=sex,
        birth_date=dt.date(2000, 1, 1) + dt.timedelta(days=int(rng.integers(0, 8000))),
        size=float(np.clip(rng.normal(1, 0.07), 0.85, 1.15)),
        proportion=float(np.clip(rng.normal(1, 0.05), 0.88, 1.12)),
        ctr_offset=float(np.clip(rng.normal(0, 0.025), -0.06, 0.06)),
        rib_offset_deg=float(rng.normal(0, 2.5)),
        density=float(np.clip(rng.normal(1, 0.08), 0.8, 1.2)),
    )


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
            months = int(true_days // 30.4375)
            if not 1 <= months < 18:
                continue
            recorded = int(round(months * DAYS_PER_YEAR))
        if 0 <= recorded <= MAX_AGE_DAYS and abs(recorded - true_days) >= 60:
            return recorded, str(kind)
    recorded = true_days + 400 if true_days + 400 <= MAX_AGE_DAYS else true_days - 400
    return recorded, "wrong_year"


def _dataset(
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


@dataclass(frozen=True)
class Job:
    index: int
    seed: int
    out: str
    profile: str
    corrupt: bool


def _examinations(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    """(child index, exam number): a fifth of the children come back for a later examination."""
    exams, child = [], 0
    while len(exams) < count:
        visits = 1 if rng.random() < 0.8 else int(rng.integers(2, 4))
        for visit in range(visits):
            if len(exams) < count:
                exams.append((child, visit))
        child += 1
    return exams


def _make_one(job: Job, child_index: int, visit: int) -> dict:
    profile = PROFILES[job.profile]
    child_rng = np.random.default_rng([job.seed, child_index])
    child = _make_child(child_rng, child_index, profile.name)
    rng = np.random.default_rng([job.seed, child_index, visit, 7])
    # First visits cover 0-18 years evenly; return visits come 3 months to 3 years later.
    first_days = int(child_rng.integers(0, MAX_AGE_DAYS + 1))
    intervals = np.random.default_rng([job.seed, child_index, 3]).integers(90, 1100, size=3)
    true_days = first_days + int(intervals[:visit].sum())
    if true_days > MAX_AGE_DAYS:
        true_days = int(rng.integers(0, MAX_AGE_DAYS + 1))
    years = true_days / DAYS_PER_YEAR
    pixels = acquire(render(child, years, profile, rng), profile, rng)
    corrupted = job.corrupt
    recorded, kind = corrupt_age(true_days, child.birth_date, rng) if corrupted else (true_days, "")
    use_patient_age = bool(rng.random() < profile.patient_age_fraction)
    if use_patient_age:
        recorded = round(recorded / 7) * 7  # PatientAge in weeks is what the file can say
    study_date = child.birth_date + dt.timedelta(days=true_days)
    ds = _dataset(child, study_date, recorded, pixels, profile, rng, use_patient_age)
    name = f"{profile.name}-{job.seed}-{job.index:06d}.dcm"
    ds.save_as(Path(job.out) / name, enforce_file_format=True)
    return {
        "file": name,
        "patient": child.patient_id,
        "true_age_days": true_days,
        "recorded_age_days": recorded,
        "sex": child.sex,
        "site": profile.name,
        "label_corrupted": int(corrupted),
        "corruption": kind,
    }


def _run(args: tuple[Job, int, int]) -> dict:
    return _make_one(*args)


def generate(
    out: Path,
    count: int,
    seed: int,
    profile: str,
    label_noise: float = 0.0,
    workers: int = 1,
    progress: bool = False,
) -> list[dict]:
    """Write `count` phantoms and `manifest.csv` into `out`; returns the manifest rows."""
    if profile not in PROFILES:
        raise ValueError(f"unknown site profile {profile!r}; one of {', '.join(PROFILES)}")
    if not 0 <= label_noise <= 1:
        raise ValueError("label noise is a fraction between 0 and 1")
    out.mkdir(parents=True, exist_ok=True)
    plan_rng = np.random.default_rng([seed, 1])
    plan = _examinations(plan_rng, count)
    # Exactly round(fraction x count) labels are corrupted, chosen at random.
    corrupt = set(plan_rng.permutation(count)[: round(label_noise * count)].tolist())
    jobs = [(Job(i, seed, str(out), profile, i in corrupt), c, v) for i, (c, v) in enumerate(plan)]
    rows = []
    with tqdm(total=count, unit="phantom", file=sys.stderr, disable=not progress) as bar:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for row in pool.map(_run, jobs, chunksize=8):
                    rows.append(row)
                    bar.update(1)
        else:
            for job in jobs:
                rows.append(_run(job))
                bar.update(1)
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write synthetic pediatric chest phantoms.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--site-profile", choices=sorted(PROFILES), required=True)
    parser.add_argument("--label-noise", type=float, default=0.0, metavar="FRACTION")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if not 0 <= args.label_noise <= 1:
        parser.error("--label-noise is a fraction between 0 and 1")
    rows = generate(
        args.out,
        args.count,
        args.seed,
        args.site_profile,
        args.label_noise,
        args.workers,
        progress=True,
    )
    corrupted = sum(r["label_corrupted"] for r in rows)
    print(
        f"wrote {len(rows)} phantoms ({corrupted} with corrupted labels) and "
        f"{args.out / 'manifest.csv'}"
    )


if __name__ == "__main__":
    main()
