"""Calibrated prediction intervals of the demo model on held-out phantoms (issue 19, item 1).

The demo model predicts two sets of phantoms of seeds it never saw, from its training site
profiles: the first calibrates (`inference_worker.conformal.calibrate`, as `manage.py calibrate`
does on a frozen set), the second measures. Per TRUE age group with at least 50 cases it prints
the achieved coverage beside the goal (90% +- 2 points) and the median interval width beside
2x the group's MAE, for the portal's label-conditional cells and, for comparison, cells by
predicted age group.

    python bench/intervals.py [--demo var/models/demo] [--calibration 500] [--test 700]
                              [--coverage 0.9] [--profiles north,south]

The width goal is read as the interval's full width (high - low); the half width is printed
too. For errors of one spread, a central 90% interval is about 4.1x the MAE wide when the error
is normal and 4.6x when it is Laplace, so a full width within 2x the MAE needs the error spread
to vary a great deal within the group.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from inference_worker import card, conformal, synthetic  # noqa: E402

CALIBRATION_SEED = 313_131  # the demo model saw seeds 101 (north) and 202 (south)
TEST_SEED = 424_242
GOAL_TOLERANCE = 0.02
MIN_GROUP = 50  # groups with fewer held-out cases are listed but not judged
WIDTH_GOAL = 2.0  # median width / MAE, at most


def predict(model: Path, count: int, seed: int, profiles: list[str]) -> tuple:
    """True ages, predictions (days) and site profiles of `count` phantoms per profile."""
    import torch

    from inference_worker.predict import load_predictor

    torch.set_num_threads(os.cpu_count() or 1)
    predictor = load_predictor(str(model))
    true, pred, sites = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for profile in profiles:
            folder = Path(tmp) / profile
            rows = synthetic.generate(folder, count, seed, profile, workers=os.cpu_count() or 1)
            results = predictor.run([str(folder / r["file"]) for r in rows], batch_size=16)
            for row, result in zip(rows, results, strict=True):
                if result.age_days is None:
                    raise SystemExit(f"the demo model failed on a '{profile}' phantom")
                true.append(int(row["true_age_days"]))
                pred.append(int(result.age_days))
                sites.append(profile)
    return np.array(true), np.array(pred), sites


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def print_table(name: str, table: dict, coverage: float) -> tuple[int, int]:
    """One taxonomy's rows; returns (groups judged, groups meeting both goals)."""
    print(f"\n{name}: {table['method']}")
    print(
        f"{'group':>7} {'n':>5} {'coverage':>9} {'95% CI':>15} {'goal':>11} "
        f"{'width mo':>9} {'2xMAE':>7} {'width/MAE':>9} {'half/MAE':>8}"
    )
    judged = met = 0
    for group, row in [*table["by_group"].items(), ("overall", table["overall"])]:
        if not row["n"]:
            print(f"{group:>7} {0:>5}  (no held-out cases)")
            continue
        ratio = row["median_width_months"] / row["mae_months"]
        in_goal = abs(row["coverage"] - coverage) <= GOAL_TOLERANCE
        narrow = ratio <= WIDTH_GOAL
        judge = group != "overall" and row["n"] >= MIN_GROUP
        if judge:
            judged += 1
            met += in_goal and narrow
        note = (
            f"  coverage {verdict(in_goal)}, width {verdict(narrow)}"
            if judge
            else ("" if group == "overall" else f"  (n < {MIN_GROUP}: not judged)")
        )
        print(
            f"{group:>7} {row['n']:>5} {row['coverage']:>9.3f} "
            f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}] "
            f"{coverage - GOAL_TOLERANCE:.2f}-{coverage + GOAL_TOLERANCE:.2f} "
            f"{row['median_width_months']:>9.1f} {2 * row['mae_months']:>7.1f} "
            f"{ratio:>9.2f} {ratio / 2:>8.2f}{note}"
        )
    return judged, met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "var" / "models" / "demo")
    parser.add_argument("--calibration", type=int, default=500, help="phantoms per profile")
    parser.add_argument("--test", type=int, default=700, help="phantoms per profile")
    parser.add_argument("--coverage", type=float, default=0.9)
    parser.add_argument("--profiles", default="north,south")
    parser.add_argument(
        "--cache", type=Path, help="an .npz of the predictions: read if there, else written"
    )
    args = parser.parse_args()
    if not (args.demo / card.CARD).exists():
        print(f"demo model: none at {args.demo} (make run trains it); intervals skipped")
        return
    profiles = [p for p in args.profiles.split(",") if p]
    start = time.perf_counter()
    if args.cache and args.cache.exists():
        saved = np.load(args.cache)
        cal = (saved["cal_true"], saved["cal_pred"], list(saved["cal_site"]))
        test = (saved["test_true"], saved["test_pred"], list(saved["test_site"]))
    else:
        cal = predict(args.demo, args.calibration, CALIBRATION_SEED, profiles)
        test = predict(args.demo, args.test, TEST_SEED, profiles)
    if args.cache and not args.cache.exists():
        parts = {"cal": cal, "test": test}
        np.savez(
            args.cache,
            **{
                f"{name}_{key}": np.asarray(values)
                for name, part in parts.items()
                for key, values in zip(("true", "pred", "site"), part, strict=True)
            },
        )
    print(
        f"demo model {args.demo}: calibrated on {len(cal[0])} phantoms (seed "
        f"{CALIBRATION_SEED}), measured on {len(test[0])} others (seed {TEST_SEED}), "
        f"profiles {', '.join(profiles)}; {time.perf_counter() - start:.0f} s"
    )
    print(
        f"goal: coverage {args.coverage:.0%} +- {GOAL_TOLERANCE * 100:.0f} points in every TRUE "
        f"age group with >= {MIN_GROUP} cases; median width <= {WIDTH_GOAL:g}x the group's MAE"
    )
    results = {}
    for taxonomy in conformal.TAXONOMIES:
        record = conformal.calibrate(*cal, coverage=args.coverage, taxonomy=taxonomy)
        table = conformal.coverage_table(*test, record)
        results[taxonomy] = print_table(f"cells by {taxonomy}", table, args.coverage)
    judged, met = results["label"]
    print(f"\nportal's cells (label): {met} of {judged} judged age groups meet both goals")


if __name__ == "__main__":
    main()
