"""Fine-tuning and site recalibration of a registered model version from curated cases: the body
of the `inference_worker.finetune` task (the portal sends the cases of frozen validation sets, by
task name, to the `inference` queue).

Payload (paths relative to the shared storage):
`{"job", "mode": "finetune" | "recalibrate", "method": "linear" | "isotonic", "name",
  "parent": {"name", "path", "sha256"}, "samples": [{"path", "age_days", "sex", "patient", "site"}],
  "epochs", "val_fraction", "seed", "out", "provenance": {...}}`
(`patient` is an opaque key the portal derives from the site's pseudonym: no identifier travels).

- finetune: `train.train` from the parent's weights and age scale (`--init-from`) on a
  patient-level split of the cases, with the parent's architecture and input size; the best epoch
  by validation MAE is kept. The parent's recalibration, fitted to other weights, is dropped.
- recalibrate: the parent predicts the cases (its own recalibration included), a linear or
  isotonic map from its output to the curated age is fitted (`recalibration`), and the new version
  is the parent's weights (same sha256) with that step added to its card.

Either way a checkpoint folder lands in `out` with the card's `parent` and `provenance`
(sets, versions, manifest checksums, split, epochs), `progress.json` beside it for the portal's
Jobs page, and the answer names it; the portal registers it. Never raises: a failure is answered.
"""

import csv
import datetime as dt
import json
import shutil
import sys
import traceback
from pathlib import Path

import numpy as np

from inference_worker import checkpoint, metrics, progress, recalibration, train
from inference_worker.ages import normalise_sex
from inference_worker.predict import Settings, load_predictor
from inference_worker.preprocess import describe

FINETUNE, RECALIBRATE = "finetune", "recalibrate"
# Fine-tuning moves a trained model a little: a tenth of the demo recipe's rate, small batches.
LEARNING_RATE = 2e-4
BATCH_SIZE = 16


def run(payload: dict, data_dir: Path) -> dict:
    """The answer for the portal: `{"job", "folder", "split", "fit"}` or `{"job", "error"}`."""
    out = data_dir / payload["out"]
    try:
        out.mkdir(parents=True, exist_ok=True)
        if payload["mode"] == RECALIBRATE:
            result = _recalibrate(payload, data_dir, out)
        elif payload["mode"] == FINETUNE:
            result = _finetune(payload, data_dir, out)
        else:
            raise ValueError(f"unknown mode {payload['mode']!r}")
    except Exception as exc:  # answered, so the job ends with the reason instead of hanging
        traceback.print_exc(file=sys.stderr)
        progress.write(out, state=progress.FAILED, reason=describe(exc))
        return {"job": payload["job"], "error": describe(exc)}
    return {"job": payload["job"], "folder": payload["out"], **result}


def _samples(payload: dict, data_dir: Path) -> list[train.Sample]:
    return [
        train.Sample(
            path=data_dir / s["path"],
            age_days=float(s["age_days"]),
            sex=normalise_sex(s.get("sex")),
            patient=str(s["patient"]),
            site=str(s.get("site") or ""),
        )
        for s in payload["samples"]
    ]


def _parent_dir(payload: dict, data_dir: Path) -> Path:
    folder = data_dir / payload["parent"]["path"]
    card = checkpoint.verify(folder)
    if card["sha256"] != payload["parent"]["sha256"]:
        raise checkpoint.CheckpointError(
            f"parent {payload['parent']['name']}: weights are not the registered ones"
        )
    return folder


def _write_card(folder: Path, card: dict) -> None:
    tmp = folder / f".{checkpoint.CARD}.tmp"
    tmp.write_text(json.dumps(card, indent=2, sort_keys=True))
    tmp.replace(folder / checkpoint.CARD)


def _lineage(payload: dict, split: dict) -> dict:
    """What the new card says of where it came from."""
    return {
        "name": payload["name"],
        "parent": {"name": payload["parent"]["name"], "sha256": payload["parent"]["sha256"]},
        "provenance": {**payload.get("provenance", {}), "split": split},
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def _recalibrate(payload: dict, data_dir: Path, out: Path) -> dict:
    parent_dir = _parent_dir(payload, data_dir)
    samples = _samples(payload, data_dir)
    if len(samples) > recalibration.MAX_CASES:
        raise ValueError(f"{len(samples)} cases: a recalibration uses at most 200")
    progress.write(out, state=progress.PREPROCESSING, images=len(samples), epochs=0)
    predictor = load_predictor(str(parent_dir), payload["parent"]["sha256"])
    results = predictor.run(
        [str(s.path) for s in samples],
        sexes=[s.sex for s in samples],
        sites=[s.site or None for s in samples],
        settings=Settings(gpu_batch=32),
    )
    pairs = [(r.age_days, s) for r, s in zip(results, samples, strict=True) if not r.error]
    if not pairs:
        raise ValueError("the parent predicted none of the cases")
    predicted = np.array([p for p, _ in pairs], dtype=float)
    true = np.array([s.age_days for _, s in pairs], dtype=float)
    step = recalibration.fit(payload["method"], predicted, true)
    after = recalibration.apply(step, predicted)
    fit = {
        "cases": len(pairs),
        "failed": len(samples) - len(pairs),
        # On the very cases it was fitted on: the held-out report is the fair comparison.
        "mae_before_months": metrics.compute(true.tolist(), predicted.tolist()).mae_months,
        "mae_after_months": metrics.compute(true.tolist(), after.tolist()).mae_months,
    }
    split = {
        "method": "none: every case fits the recalibration",
        "fit_images": len(pairs),
        "fit_patients": len({s.patient for _, s in pairs}),
    }
    parent_card = checkpoint.read_card(parent_dir)
    shutil.copy2(parent_dir / parent_card["weights"], out / checkpoint.WEIGHTS)
    card = {
        **parent_card,
        **_lineage(payload, split),
        "weights": checkpoint.WEIGHTS,
        # For the job's site alone (`recalibration.apply`); None: every site's images.
        "recalibration": [
            *(parent_card.get("recalibration") or []),
            {**step, "site": payload.get("provenance", {}).get("site"), "fit": fit},
        ],
    }
    _write_card(out, card)
    checkpoint.verify(out)
    progress.write(out, state=progress.DONE, images=len(samples), epochs=0)
    return {"split": split, "fit": fit}


def _manifest(samples: list[train.Sample], out: Path) -> Path:
    path = out / "manifest.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "age_days", "sex", "patient", "site"])
        writer.writeheader()
        for s in samples:
            writer.writerow(
                {
                    "file": str(s.path),  # absolute: the manifest's folder does not prefix it
                    "age_days": s.age_days,
                    "sex": s.sex,
                    "patient": s.patient,
                    "site": s.site,
                }
            )
    return path


def _finetune(payload: dict, data_dir: Path, out: Path) -> dict:
    parent_dir = _parent_dir(payload, data_dir)
    parent_card = checkpoint.read_card(parent_dir)
    samples = _samples(payload, data_dir)
    val_fraction, seed = float(payload["val_fraction"]), int(payload["seed"])
    train_set, val_set = train.patient_split(samples, val_fraction, seed)
    split = {
        "method": "patient-level (sha256 of seed and patient key)",
        "val_fraction": val_fraction,
        "seed": seed,
        "train_images": len(train_set),
        "validation_images": len(val_set),
        "train_patients": len({s.patient for s in train_set}),
        "validation_patients": len({s.patient for s in val_set}),
    }
    manifest = _manifest(samples, out)
    parent_model = checkpoint.model_options(parent_card)
    args = train.parser().parse_args(
        [
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--init-from",
            str(parent_dir),
            "--label-column",
            "age_days",
            "--arch",
            parent_model["arch"],
            "--width",
            str(parent_model["width"]),
            "--pool",
            parent_model["pool"],
            "--size",
            str(parent_card["input_size"]),
            "--epochs",
            str(int(payload["epochs"])),
            "--batch-size",
            str(BATCH_SIZE),
            "--lr",
            str(LEARNING_RATE),
            "--val-fraction",
            str(val_fraction),
            "--seed",
            str(seed),
            "--workers",
            "1",  # a Celery prefork child cannot start processes
            "--loader-workers",
            "0",
            "--name",
            payload["name"],
        ]
        + (["--synthetic"] if parent_card.get("training_data", {}).get("synthetic") else [])
    )
    card = train.train(args)
    card = {**card, **_lineage(payload, split)}
    card["training_data"]["manifest"] = "curated cases of the sets in provenance"
    _write_card(out, card)
    checkpoint.verify(out)
    shutil.rmtree(out / "cache", ignore_errors=True)
    (out / train.LAST).unlink(missing_ok=True)
    mae = card["metrics"]["validation"]["overall"]["mae_months"]
    return {"split": split, "fit": {"validation_mae_months": mae}}
