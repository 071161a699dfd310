"""Site profiles: how each (fictional) site acquires its radiographs. They differ enough that a
second site is a real domain shift."""

from dataclasses import dataclass

from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless


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
    # How much larger the chest is on the detector than in the child: a site that films its
    # children supine, AP, at a short source-to-image distance enlarges them against sites that
    # film PA at 180 cm, and the thorax's size is what dates a child first.
    magnification: float = 1.0


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
        magnification=1.08,
    ),
}
