"""A child's individual build and maturity, and the growth rules of the chest (years -> mm or
ratio)."""

import datetime as dt
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Child:
    """One child's individual build and maturity tempo, fixed across their examinations."""

    patient_id: str
    name: str
    sex: str
    birth_date: dt.date
    size: float  # overall scale around the population growth curve
    proportion: float  # thorax height / width around the curve
    ctr_offset: float
    rib_offset_deg: float
    density: float
    # Drawn after the fields above, from a generator of their own (`records.make_child`), so
    # that a seed's children, sexes, birth dates and ages stay those of earlier versions; the
    # defaults are the population average.
    tempo: float = 0.0  # skeletal maturity in SDs for the age (see `maturity_years`)
    vertebra_build: float = 1.0  # vertebral height, relative to `size`
    clavicle_build: float = 1.0  # clavicle length, relative to `size`
    humerus_build: float = 1.0  # humeral head, relative to `size`
    thymus_build: float = 1.0  # the thymus shadow's strength


SIZE_SD = 0.07  # `size`, relative
# How far a child's skeleton is ahead of or behind the calendar, as bone age is against the
# age: the standard deviations of the Greulich and Pyle atlas (1959; the Brush Foundation
# children) are about 2 months at 1 year, 4 at 2, 5 at 3, 8-9 at 6-8 and 10-12 months from
# school age through puberty (Tanner-Whitehouse bone ages spread as much). A child keeps their
# tempo (early and late maturers), so it is one draw per child; the spread is set at the upper
# end of that range (1.0 years), the tempo cut at 2.5 SD.
MATURITY_SD_YEARS = 1.0  # the spread from school age on
MATURITY_SD_RISE_YEARS = 4.0  # the age scale over which the spread grows to it
# Early maturers are the taller children of their age (Tanner, Growth at Adolescence, 1962):
# the tempo's correlation with `size`. A modelling choice, moderate.
SIZE_TEMPO_CORRELATION = 0.4
# Length ratios vary between children of one size and age (a long trunk, short clavicles):
# each of these parts gets its own log-normal factor around the child's size, a relative SD
# as large as that of `size` itself.
PART_BUILD_SD = 0.07
THYMUS_BUILD_SD = 0.3  # the infant thymus's size varies several-fold between children


def maturity_sd_years(years: float) -> float:
    """The spread of skeletal maturity between children of one age (years): SD x (1 - e^-a/4),
    2.7 months at 1 year, 4.7 at 2, 6.3 at 3, 9.3 at 6, 11 at 10, 11.6 at 14 (Greulich and
    Pyle, above)."""
    return MATURITY_SD_YEARS * (1 - math.exp(-years / MATURITY_SD_RISE_YEARS))


def maturity_years(years: float, tempo: float) -> float:
    """The maturity age that times this child's maturing features (thymus involution, humeral
    head ossification and growth, physis closure, bone density): the age plus `tempo` standard
    deviations."""
    return max(0.0, years + tempo * maturity_sd_years(years))


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
