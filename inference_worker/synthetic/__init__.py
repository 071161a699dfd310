"""Synthetic pediatric chest phantoms written as DICOM files, with a manifest.

Modules: `profiles` (how each site acquires), `growth` (a child's build and the growth rules),
`imaging` (drawing the chest, then acquiring it), `records` (people, dates, label noise, the DICOM
data set), `generator` (the folder of files and its manifest, and the command line).

    python -m inference_worker.synthetic --out DIR --count N --seed S --site-profile NAME
                                         [--label-noise FRACTION] [--workers N]

What they are: a frontal chest radiograph drawn from a handful of anatomical shapes whose sizes and
proportions follow a child's growth: the thorax widens and lengthens, the cardiothoracic ratio
falls from about 0.6 in infancy to about 0.5, the ribs turn from horizontal to oblique, vertebral
bodies grow taller, clavicles lengthen, the humeral head ossifies and its growth plate closes, the
thymus shadow fades, bones grow denser. Each child has its own size and proportions, its own
build of the vertebrae, clavicles, humeral head and thymus, and its own skeletal maturity (a tempo
that times the thymus, the humeral head, the growth plate and the bone density, spread as bone
age is against the calendar: `growth.maturity_sd_years`), so the age is not a function of the
drawn anatomy (`imaging.Anatomy`): bench/floor.py measures how well an oracle on it does. Site
profiles differ in acquisition
(MONOCHROME1 or 2, bit depth, pixel spacing, matrix, exposure, noise, blur, collimation,
positioning, burned-in markers, transfer syntax), so that a second site is a real domain shift.
Files carry fake but realistic patient names, IDs, birth and study dates, institutions and private
tags, so that ingest's de-identification is exercised.

What they are not: radiographs of children. No real anatomy, pathology, or scatter physics; a
model trained on them learns the growth rules written here, and says nothing about real children.

Torch-free (numpy and pydicom), so the portal may use it to seed demo data.
"""

from inference_worker.synthetic.generator import MANIFEST_FIELDS, generate, main
from inference_worker.synthetic.growth import (
    cardiothoracic_ratio,
    rib_angle_deg,
    thorax_width_mm,
)
from inference_worker.synthetic.profiles import PROFILES, SiteProfile
from inference_worker.synthetic.records import corrupt_age

__all__ = [
    "MANIFEST_FIELDS",
    "PROFILES",
    "SiteProfile",
    "cardiothoracic_ratio",
    "corrupt_age",
    "generate",
    "main",
    "rib_angle_deg",
    "thorax_width_mm",
]
