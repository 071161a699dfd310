"""Predict ages (and heatmaps) for DICOM files with a checkpoint folder.

    python -m inference_worker.predict FILE [FILE ...] --model DIR [--heatmaps DIR] [--json]

With --json, one JSON object per file and line: `{"file", "age_days", "sex", "heatmap", "model",
"ms": {"load", "preprocess", "predict", "heatmap", "encode"}}`, or `{"file", "error"}` for a file
that cannot be read. The pipeline has named stages and records each stage's milliseconds; the
network is loaded once per process and cached.
"""

import argparse
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import torch

from inference_worker import checkpoint
from inference_worker.heatmap import png_bytes, predict_with_cam, to_original_grid
from inference_worker.model import ResNet, sex_tensor
from inference_worker.preprocess import Geometry, preprocess

STAGES = ("load", "preprocess", "predict", "heatmap", "encode")


@dataclass
class Result:
    file: str
    age_days: int | None = None
    sex: str | None = None
    heatmap: str | None = None
    heatmap_sha256: str | None = None
    error: str | None = None
    ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self, model: str) -> dict:
        if self.error:
            return {"file": self.file, "error": self.error}
        return {
            "file": self.file,
            "age_days": self.age_days,
            "sex": self.sex,
            "heatmap": self.heatmap,
            "model": model,
            "ms": {k: round(v, 2) for k, v in self.ms.items()},
        }


@contextmanager
def _timed(results: list[Result], stage: str) -> Iterator[None]:
    """Charge a batch stage's time to each of its images, evenly."""
    start = time.perf_counter()
    yield
    each = (time.perf_counter() - start) * 1000 / max(1, len(results))
    for r in results:
        r.ms[stage] = r.ms.get(stage, 0.0) + each


class Predictor:
    """A loaded model and its card; prediction and heatmap in one pass per batch."""

    def __init__(self, model: ResNet, card: dict, device: torch.device) -> None:
        self.model, self.card, self.device = model, card, device
        self.size = int(card["input_size"])
        norm = card["normalisation"]
        self.age_mean, self.age_std = float(norm["age_mean_days"]), float(norm["age_std_days"])
        # channels-last suits oneDNN on CPUs as well as tensor cores on GPUs.
        self.model = self.model.to(memory_format=torch.channels_last)

    @property
    def name(self) -> str:
        return str(self.card.get("name", "model"))

    def run(
        self,
        files: list[str],
        *,
        heatmap_paths: list[str | None] | None = None,
        sexes: list[str | None] | None = None,
        batch_size: int = 8,
    ) -> list[Result]:
        """One Result per file, in order. `heatmap_paths[i]` is where to write file i's PNG
        (None: no heatmap); `sexes[i]` overrides the file's PatientSex."""
        heatmap_paths = heatmap_paths or [None] * len(files)
        sexes = sexes or [None] * len(files)
        results: list[Result] = []
        for start in range(0, len(files), batch_size):
            chunk = range(start, min(start + batch_size, len(files)))
            results += self._batch(
                [files[i] for i in chunk],
                [heatmap_paths[i] for i in chunk],
                [sexes[i] for i in chunk],
            )
        return results

    def _batch(self, files, heatmap_paths, sexes) -> list[Result]:
        results = [Result(file=f) for f in files]
        loaded: list[tuple[int, pydicom.Dataset]] = []
        with _timed(results, "load"):
            for i, f in enumerate(files):
                try:
                    loaded.append((i, pydicom.dcmread(f)))
                except Exception as exc:
                    results[i].error = f"cannot read {f}: {type(exc).__name__}"
        ready: list[tuple[int, torch.Tensor, Geometry]] = []
        with _timed(results, "preprocess"):
            for i, ds in loaded:
                try:
                    tensor, geometry = preprocess(ds, self.size)
                except Exception as exc:
                    results[i].error = f"cannot decode {files[i]}: {type(exc).__name__}"
                    continue
                sex = (sexes[i] or str(ds.get("PatientSex", "") or "O")).strip().upper()[:1]
                results[i].sex = sex if sex in ("M", "F") else "O"
                ready.append((i, tensor, geometry))
        if not ready:
            return results
        ok = [results[i] for i, _, _ in ready]
        with _timed(ok, "predict"):
            x = torch.stack([t for _, t, _ in ready]).to(self.device)
            x = x.contiguous(memory_format=torch.channels_last)
            sex = sex_tensor([r.sex or "O" for r in ok], self.device)
            autocast = torch.autocast(
                self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"
            )
            with autocast:
                output = predict_with_cam(self.model, x, sex)
            ages = (output.age.float().cpu().numpy() * self.age_std + self.age_mean).clip(0, None)
            cams = output.cam.float().cpu()
        for r, age in zip(ok, ages, strict=True):
            r.age_days = int(round(float(age)))
        heats: dict[int, np.ndarray] = {}
        with _timed(ok, "heatmap"):
            for k, (i, _t, geometry) in enumerate(ready):
                if heatmap_paths[i]:
                    heats[i] = to_original_grid(cams[k], geometry)
        with _timed(ok, "encode"):
            for i, heat in heats.items():
                path = Path(heatmap_paths[i])
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.tmp")
                png = png_bytes(heat)
                tmp.write_bytes(png)
                tmp.replace(path)
                results[i].heatmap = str(path)
                # The portal stores it, so `verify_storage` can tell an altered heatmap.
                results[i].heatmap_sha256 = hashlib.sha256(png).hexdigest()
        return results


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=4)
def load_predictor(model_dir: str, sha256: str | None = None) -> Predictor:
    """Loaded once per process and model; `sha256`, when given, must match the card."""
    model, card = checkpoint.load(Path(model_dir), default_device())
    if sha256 and card["sha256"] != sha256:
        raise checkpoint.CheckpointError(
            f"{model_dir}: weights sha256 {card['sha256']} is not the expected {sha256}"
        )
    return Predictor(model, card, default_device())


def run_batch(payload: dict, data_dir: Path) -> dict:
    """A portal batch (`{"job", "model": {"name", "path", "sha256"}, "images": [{"id", "path",
    "sex", "heatmap"}]}`, paths relative to the shared storage) -> the answer for the portal:
    one result per image, an age and a heatmap (with its sha256), or the reason it failed."""
    model, images = payload["model"], payload["images"]
    answer: dict = {"job": payload.get("job"), "model": model["name"], "results": []}
    try:
        predictor = load_predictor(str(data_dir / model["path"]), model["sha256"])
    except (checkpoint.CheckpointError, OSError, KeyError) as exc:
        reason = f"model {model['name']} cannot be loaded: {exc}"
        answer["results"] = [{"image": image["id"], "error": reason} for image in images]
        return answer
    results = predictor.run(
        [str(data_dir / image["path"]) for image in images],
        heatmap_paths=[str(data_dir / image["heatmap"]) for image in images],
        sexes=[image.get("sex") for image in images],
        batch_size=len(images),
    )
    for image, result in zip(images, results, strict=True):
        if result.error:
            answer["results"].append({"image": image["id"], "error": result.error})
        else:
            answer["results"].append(
                {
                    "image": image["id"],
                    "age_days": result.age_days,
                    "heatmap": image["heatmap"],
                    "heatmap_sha256": result.heatmap_sha256,
                    "ms": result.ms,
                }
            )
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Predict pediatric age from chest X-rays.")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--model", required=True, type=Path, help="checkpoint folder")
    parser.add_argument("--heatmaps", type=Path, help="folder for heatmap PNGs")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        predictor = load_predictor(str(args.model))
    except checkpoint.CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = [
        str(args.heatmaps / f"{Path(f).stem}.png") if args.heatmaps else None for f in args.files
    ]
    failed = 0
    for result in predictor.run(args.files, heatmap_paths=paths, batch_size=args.batch_size):
        failed += bool(result.error)
        if args.json:
            print(json.dumps(result.as_dict(predictor.name)), flush=True)
        elif result.error:
            print(f"{result.file}: {result.error}", file=sys.stderr)
        else:
            years, months = divmod(result.age_days / 30.4375, 12)
            print(
                f"{result.file}: {result.age_days} days ({int(years)} y {int(months)} m)"
                + (f", heatmap {result.heatmap}" if result.heatmap else "")
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
