"""A child's individual build and the growth rules of the chest (years -> mm or ratio)."""

import datetime as dt
import math
from dataclasses import dataclass


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


def thorax_width_mm(years: float, sex: str) -> float:
    width = 110 + 170 * (years / 18) ** 0.6
    if sex == "F":  # girls end about 6% narrower, diverging through puberty
        width *= 1 - 0.06 * smoothstep(10, 16, years)
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
    return 0.0 if years < 0.3 else 2 + 19 * smoothstep(0.3, 15, years)


def thymus_strength(years: float) -> float:
    return math.exp(-years / 1.6)


def bone_density(years: float) -> float:
    return 0.55 + 0.45 * math.sqrt(years / 18)


def smoothstep(a: float, b: float, x: float) -> float:
    t = min(1.0, max(0.0, (x - a) / (b - a)))
    return t * t * (3 - 2 * t)
