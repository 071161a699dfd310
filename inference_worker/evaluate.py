"""Evaluate a checkpoint on a manifest: overall, per sex, per age group and per age group x sex.

    python -m inference_worker.evaluate --manifest CSV --model DIR [--json] [--label-column C]

N, MAE (months), RMSE, mean error (bias), MAPE (%) and Spearman rho, from the torch-free
`inference_worker.metrics` that the portal's reports reuse. The label defaults to the manifest's
`true_age_days` where it has one (phantoms), else `recorded_age_days`, else `age_days`.
"""

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from inference_worker import checkpoint, metrics
from inference_worker.predict import load_predictor
from inference_worker.train import read_manifest


def evaluate(
    manifest: Path, model: Path, label_column: str | None = None, batch_size: int = 16
) -> dict:
    with manifest.open(newline="") as fh:
        header = next(csv.reader(fh))
    column = label_column or next(
        c for c in ("true_age_days", "recorded_age_days", "age_days") if c in header
    )
    samples = read_manifest(manifest, column)
    predictor = load_predictor(str(model))
    predicted, kept = [], []
    for start in tqdm(
        range(0, len(samples), batch_size), desc="evaluate", unit="batch", file=sys.stderr
    ):
        chunk = samples[start : start + batch_size]
        results = predictor.run(
            [str(s.path) for s in chunk], sexes=[s.sex for s in chunk], batch_size=batch_size
        )
        for sample, result in zip(chunk, results, strict=True):
            if result.age_days is not None:
                predicted.append(result.age_days)
                kept.append(sample)
    rep = metrics.report([s.age_days for s in kept], predicted, [s.sex for s in kept])
    rep["by_site"] = {
        site: metrics.compute(
            [s.age_days for s in kept if s.site == site],
            [p for s, p in zip(kept, predicted, strict=True) if s.site == site],
        ).as_dict()
        for site in sorted({s.site for s in kept if s.site})
    }
    rep["model"] = predictor.name
    rep["label_column"] = column
    rep["unreadable"] = len(samples) - len(kept)
    return rep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate an age model on a manifest.")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--label-column")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        rep = evaluate(args.manifest, args.model, args.label_column)
    except checkpoint.CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rep))
    else:
        print(f"model {rep['model']}, label {rep['label_column']}")
        print(metrics.format_table(rep))
        for site, m in rep["by_site"].items():
            print(f"site {site}: N {m['n']}, MAE {m['mae_months']:.2f} months")
    return 0


if __name__ == "__main__":
    sys.exit(main())
