"""Writing a folder of phantoms and its manifest; the command line.

python -m inference_worker.synthetic --out DIR --count N --seed S --site-profile NAME
                                     [--label-noise FRACTION] [--workers N]
"""

import argparse
import csv
import datetime as dt
import logging
import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from inference_worker.ages import AGE_LIMIT_DAYS, DAYS_PER_YEAR
from inference_worker.synthetic.growth import Child
from inference_worker.synthetic.imaging import acquire, render
from inference_worker.synthetic.profiles import PROFILES
from inference_worker.synthetic.records import corrupt_age, make_child, make_dataset

# pylibjpeg-openjpeg logs every tile it encodes at INFO.
logging.getLogger("openjpeg").setLevel(logging.WARNING)

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


def _examination(
    seed: int, profile: str, child_index: int, visit: int
) -> tuple[Child, int, np.random.Generator]:
    """The child, their true age in days, and the examination's generator (positioning, noise,
    label noise and the record draw from it next)."""
    child_rng = np.random.default_rng([seed, child_index])
    # The maturity and the parts' build from a generator of their own: `child_rng` draws the
    # ages next, which stay those of the seed's earlier versions.
    build_rng = np.random.default_rng([seed, child_index, 11])
    child = make_child(child_rng, child_index, profile, build_rng)
    rng = np.random.default_rng([seed, child_index, visit, 7])
    # First visits cover 0-18 years evenly; return visits come 3 months to 3 years later.
    first_days = int(child_rng.integers(0, AGE_LIMIT_DAYS))
    intervals = np.random.default_rng([seed, child_index, 3]).integers(90, 1100, size=3)
    true_days = first_days + int(intervals[:visit].sum())
    if true_days >= AGE_LIMIT_DAYS:
        true_days = int(rng.integers(0, AGE_LIMIT_DAYS))
    return child, true_days, rng


def replay(count: int, seed: int, profile: str) -> list[tuple[Child, int]]:
    """The children and true ages (days) of `generate(out, count, seed, profile)`'s phantoms, in
    manifest order, without drawing them: the hidden build that `bench/floor.py` needs."""
    plan = _examinations(np.random.default_rng([seed, 1]), count)
    return [_examination(seed, profile, c, v)[:2] for c, v in plan]


def _make_one(job: Job, child_index: int, visit: int) -> dict:
    profile = PROFILES[job.profile]
    child, true_days, rng = _examination(job.seed, profile.name, child_index, visit)
    years = true_days / DAYS_PER_YEAR
    pixels = acquire(render(child, years, profile, rng), profile, rng)
    corrupted = job.corrupt
    recorded, kind = corrupt_age(true_days, child.birth_date, rng) if corrupted else (true_days, "")
    use_patient_age = bool(rng.random() < profile.patient_age_fraction)
    if use_patient_age:
        recorded = round(recorded / 7) * 7  # PatientAge in weeks is what the file can say
    study_date = child.birth_date + dt.timedelta(days=true_days)
    ds = make_dataset(child, study_date, recorded, pixels, profile, rng, use_patient_age)
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


def _clean_processes() -> multiprocessing.context.BaseContext:
    """Workers forked from a clean server, not from the caller: a caller holding broker
    connections (a test process, a portal process) would have kombu's after-fork hook in each
    forked child read from the parent's Redis socket and hang."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def generate(
    out: Path,
    count: int,
    seed: int,
    profile: str,
    label_noise: float = 0.0,
    workers: int = 1,
    progress: bool = False,
    on_row: Callable[[int], None] | None = None,
) -> list[dict]:
    """Write `count` phantoms and `manifest.csv` into `out`; returns the manifest rows.
    `on_row(n)` is called after each phantom, with the number written so far."""
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
            with ProcessPoolExecutor(max_workers=workers, mp_context=_clean_processes()) as pool:
                for row in pool.map(_run, jobs, chunksize=8):
                    rows.append(row)
                    bar.update(1)
                    if on_row:
                        on_row(len(rows))
        else:
            for job in jobs:
                rows.append(_run(job))
                bar.update(1)
                if on_row:
                    on_row(len(rows))
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
