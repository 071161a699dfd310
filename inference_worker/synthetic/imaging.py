"""Drawing a child's chest as a density map, then acquiring it the way a site does."""

import math
from dataclasses import dataclass

import numpy as np

from inference_worker.synthetic.growth import (
    Child,
    bone_density,
    cardiothoracic_ratio,
    clavicle_length_mm,
    humeral_head_radius_mm,
    maturity_years,
    rib_angle_deg,
    smoothstep,
    thorax_width_mm,
    thymus_strength,
    vertebral_height_mm,
)
from inference_worker.synthetic.profiles import SiteProfile


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


@dataclass(frozen=True)
class Anatomy:
    """Every quantity of one examination's anatomy that `render` draws from the child's age,
    build and maturity: the picture depends on the age only through these (and on positioning
    and the site's acquisition, which do not depend on it). `bench/floor.py` regresses the age
    from them to measure how well any model could do."""

    width_mm: float  # thorax
    height_mm: float  # thorax
    bone: float  # bone density factor
    thymus: float  # strength of the thymus shadow (0: not drawn)
    ctr: float  # cardiothoracic ratio
    vertebra_mm: float  # vertebral body height
    rib_angle_deg: float
    clavicle_mm: float
    humeral_head_mm: float  # radius (0: not ossified)
    physis_gap_mm: float  # humeral growth plate


def anatomy(child: Child, years: float) -> Anatomy:
    """The anatomy `render` draws for this child at this age. Lengths follow the age and the
    child's size, each part with its own build factor; the maturing features (thymus
    involution, humeral head ossification and growth, physis closure, bone density) follow the
    child's maturity age (`growth.maturity_years`)."""
    w = thorax_width_mm(years, child.sex) * child.size
    mature = maturity_years(years, child.tempo)
    thymus = thymus_strength(mature) * child.thymus_build
    return Anatomy(
        width_mm=w,
        height_mm=w * (0.78 + 0.22 * (years / 18)) * child.proportion,  # barrel -> taller chest
        bone=bone_density(mature) * child.density,
        thymus=thymus if thymus > 0.02 else 0.0,
        ctr=cardiothoracic_ratio(years) + child.ctr_offset,
        vertebra_mm=vertebral_height_mm(years) * child.size * child.vertebra_build,
        rib_angle_deg=rib_angle_deg(years) + child.rib_offset_deg,
        clavicle_mm=clavicle_length_mm(years) * child.size * child.clavicle_build,
        humeral_head_mm=humeral_head_radius_mm(mature) * child.size * child.humerus_build,
        physis_gap_mm=3.0 * (1 - smoothstep(14, 18, mature)),
    )


def render(
    child: Child, years: float, profile: SiteProfile, rng: np.random.Generator
) -> np.ndarray:
    """Density map of one examination (0 = air, larger = more attenuating), rows x columns."""
    s = profile.spacing_mm / profile.magnification
    rows, cols = profile.rows, profile.columns
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    x0 = (xx - cols / 2) * s
    y0 = (yy - rows / 2) * s
    # Positioning: rotation and shift vary by examination and site.
    theta = math.radians(rng.normal(0, profile.rotation_deg))
    tx, ty = rng.normal(0, 6), rng.normal(0, 6)
    x = math.cos(theta) * (x0 - tx) + math.sin(theta) * (y0 - ty)
    y = -math.sin(theta) * (x0 - tx) + math.cos(theta) * (y0 - ty)

    g = anatomy(child, years)
    w, h, bone = g.width_mm, g.height_mm, g.bone
    top = -0.45 * h
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
    thymus = g.thymus
    if thymus > 0:
        for side in (-1, 1):
            density += (
                0.55
                * thymus
                * _ellipse(x, y, side * 0.1 * w, top + 0.22 * h, 0.12 * w, 0.16 * h, edge=3)
            )
    # Heart: width = CTR x thorax width, sitting to the patient's left (image right).
    heart_w = g.ctr * w * 0.92
    density += 0.7 * _ellipse(x, y, 0.08 * w, 0.2 * h, heart_w / 2, 0.26 * h, edge=3)
    # Spine: vertebral bodies and discs down the midline.
    v_height = g.vertebra_mm
    v_width = 0.075 * w + 6
    period = v_height * 1.3
    phase = np.mod(y - top, period)
    body = _soft(np.abs(x) - v_width / 2, 1.0) * _soft(phase - v_height, 0.8)
    density += 0.55 * bone * body * _soft(-(y - top + 0.15 * h), 2) * _soft(y - 0.62 * h, 2)
    # Ribs: ten pairs, posterior arcs descending laterally at the age's angle.
    slope = math.tan(math.radians(g.rib_angle_deg))
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
    c_len = g.clavicle_mm
    for side in (-1, 1):
        lateral = side * x - 0.04 * w
        centre = (
            top - 0.02 * h - 0.08 * lateral + 4 * np.sin(np.clip(lateral / c_len, 0, 1) * math.pi)
        )
        band = _soft(np.abs(y - centre) - (0.012 * w + 2), 0.8)
        density += 0.5 * bone * band * _soft(-lateral, 1) * _soft(lateral - c_len, 1.5)
    # Humeri: shafts at the sides, an ossified head appearing and a physis that closes.
    physis_gap = g.physis_gap_mm
    head_r = g.humeral_head_mm
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
