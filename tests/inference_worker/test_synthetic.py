import csv
import dataclasses
import datetime as dt
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from inference_worker.ages import AGE_LIMIT_DAYS, DAYS_PER_YEAR
from inference_worker.synthetic import (
    PROFILES,
    cardiothoracic_ratio,
    corrupt_age,
    generate,
    rib_angle_deg,
    thorax_width_mm,
)
from inference_worker.synthetic.generator import replay
from inference_worker.synthetic.growth import maturity_years
from inference_worker.synthetic.imaging import anatomy, render


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    rows = generate(out, 40, seed=5, profile="south", label_noise=0.25)
    return out, rows


def test_ages_cover_zero_to_eighteen_years(phantoms):
    _, rows = phantoms
    ages = np.array([r["true_age_days"] for r in rows])
    assert ages.min() >= 0
    assert ages.max() < AGE_LIMIT_DAYS
    assert ages.min() < 2 * DAYS_PER_YEAR
    assert ages.max() > 14 * DAYS_PER_YEAR
    # spread over the range, not clumped: every third of the range is used
    thirds = np.histogram(ages, bins=3, range=(0, AGE_LIMIT_DAYS))[0]
    assert (thirds > 0).all()


def test_corrupted_label_fraction_matches_the_flag(phantoms):
    out, rows = phantoms
    corrupted = [r for r in rows if r["label_corrupted"]]
    assert len(corrupted) == round(0.25 * 40)
    for r in rows:
        difference = abs(r["recorded_age_days"] - r["true_age_days"])
        assert difference >= 53 if r["label_corrupted"] else difference <= 3
    with (out / "manifest.csv").open() as fh:
        manifest = list(csv.DictReader(fh))
    assert [m["file"] for m in manifest] == [r["file"] for r in rows]
    assert sum(int(m["label_corrupted"]) for m in manifest) == len(corrupted)


def test_files_carry_fake_phi_and_the_site_acquisition(phantoms):
    out, rows = phantoms
    ds = pydicom.dcmread(out / rows[0]["file"])
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert ds.Modality == "CR"
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    assert "^" in str(ds.PatientName)
    assert ds.PatientID
    assert ds.InstitutionName
    assert any(elem.tag.is_private for elem in ds)
    assert ds.pixel_array.shape == (PROFILES["south"].rows, PROFILES["south"].columns)
    assert ds.BurnedInAnnotation == "YES"


def test_same_seed_gives_the_same_phantoms(tmp_path):
    a = generate(tmp_path / "a", 3, seed=9, profile="north")
    b = generate(tmp_path / "b", 3, seed=9, profile="north")
    assert a == b
    assert np.array_equal(
        pydicom.dcmread(tmp_path / "a" / a[0]["file"]).pixel_array,
        pydicom.dcmread(tmp_path / "b" / b[0]["file"]).pixel_array,
    )


def test_growth_rules_follow_a_childs_chest():
    assert cardiothoracic_ratio(0) == pytest.approx(0.6)
    assert cardiothoracic_ratio(17) == pytest.approx(0.5, abs=0.01)
    assert rib_angle_deg(0) < 8 < 20 < rib_angle_deg(15)
    assert thorax_width_mm(1, "M") < thorax_width_mm(8, "M") < thorax_width_mm(17, "M")
    assert thorax_width_mm(17, "F") < thorax_width_mm(17, "M")


def test_label_errors_are_plausible_and_stay_in_range():
    rng = np.random.default_rng(0)
    for true_days in (20, 200, 400, 3000, AGE_LIMIT_DAYS - 11):
        recorded, kind = corrupt_age(true_days, dt.date(2010, 3, 7), rng)
        assert 0 <= recorded < AGE_LIMIT_DAYS
        assert abs(recorded - true_days) >= 60
        assert kind in {"wrong_year", "swapped_day_month", "months_as_years"}


def test_cli_refuses_a_label_noise_outside_zero_to_one(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inference_worker.synthetic",
            "--out",
            str(tmp_path),
            "--count",
            "1",
            "--site-profile",
            "north",
            "--label-noise",
            "1.5",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--label-noise" in result.stderr


def _girls(count: int) -> list:
    """Distinct girls of one seed (first visits only)."""
    seen: dict = {}
    for child, _ in replay(count, 21, "north"):
        if child.sex == "F":
            seen.setdefault(child.patient_id, child)
    return list(seen.values())


def test_an_early_maturer_shows_a_more_mature_chest_than_a_late_one_of_the_same_age():
    child = _girls(10)[0]
    early, late = (dataclasses.replace(child, tempo=t) for t in (1.5, -1.5))
    infant = anatomy(early, 1.0), anatomy(late, 1.0)
    assert infant[0].thymus < infant[1].thymus  # involutes sooner
    school = anatomy(early, 8.0), anatomy(late, 8.0)
    assert school[0].humeral_head_mm > school[1].humeral_head_mm
    assert school[0].width_mm == school[1].width_mm  # the same build, only the tempo differs
    teen = anatomy(early, 15.5), anatomy(late, 15.5)
    assert teen[0].physis_gap_mm < teen[1].physis_gap_mm  # closes sooner


def test_the_drawn_anatomy_is_not_a_function_of_age_and_sex():
    girls = _girls(400)
    assert len(girls) > 100
    at = [anatomy(c, 10.0) for c in girls]
    # Skeletal maturity spreads as bone age does at 10 years: an SD of about a year.
    assert 0.8 < np.std([maturity_years(10.0, c.tempo) - 10.0 for c in girls]) < 1.2
    # Each part has its own build: its length against the thorax width varies between children.
    for part in ("vertebra_mm", "clavicle_mm", "humeral_head_mm"):
        ratios = np.log([getattr(a, part) / a.width_mm for a in at])
        assert np.std(ratios) > 0.05, part
    infants = [anatomy(c, 0.8) for c in girls]
    assert np.std(np.log([a.thymus for a in infants])) > 0.2


def test_the_maturity_draws_leave_a_seeds_children_and_ages_as_they_were():
    """The tempo and the parts' builds come from a generator of their own: the children, sexes,
    birth dates, ages and overall build of a seed are those of the generator before them."""
    drawn = [
        (c.patient_id, c.sex, c.birth_date.isoformat(), days, round(c.size, 6))
        for c, days in replay(6, 9, "east")
    ]
    assert drawn == [
        ("EA9649401-0", "F", "2013-03-18", 85, 1.045927),
        ("EA9649401-0", "F", "2013-03-18", 343, 1.045927),
        ("EA4744516-1", "F", "2020-06-15", 3502, 1.125827),
        ("EA4744516-1", "F", "2020-06-15", 3784, 1.125827),
        ("EA7347985-2", "F", "2019-03-27", 3977, 0.911365),
        ("EA3065190-3", "M", "2012-02-01", 1080, 1.109303),
    ]


def test_east_draws_the_same_chest_larger_and_says_so_in_its_files(tmp_path):
    """`east` films AP at a short distance: a real site shift in the cue that dates a child
    first, the thorax's size (bench/finetune.py's goal needs a shift to recalibrate)."""
    child = _girls(1)[0]
    magnified = dataclasses.replace(PROFILES["east"], rotation_deg=0.0)
    widths = []
    for profile in (dataclasses.replace(magnified, magnification=1.0), magnified):
        density = render(child, 0.3, profile, np.random.default_rng(3))  # inside the field
        widths.append(np.count_nonzero(density[profile.rows // 2] > 0.05))  # the trunk, not air
    assert PROFILES["east"].magnification == 1.08
    assert PROFILES["north"].magnification == PROFILES["south"].magnification == 1.0
    ds = pydicom.dcmread(tmp_path / generate(tmp_path, 1, seed=9, profile="east")[0]["file"])
    assert float(ds.EstimatedRadiographicMagnificationFactor) == 1.08
    assert 1.06 < widths[1] / widths[0] < 1.10
