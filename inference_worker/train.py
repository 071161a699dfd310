"""Train a CA-ResNet age model: the paper's method for a site's real, curated data.

    python -m inference_worker.train --manifest CSV --out DIR [--arch ca_resnet50] [--size 512]
                                     [--epochs N] [--batch-size B] [--lr LR] [--width W] ...

Patient-level split, AdamW, cosine schedule with warm-up, L1 loss on a normalised age,
augmentation that keeps anatomy plausible (small rotation, scale, shift, exposure; no left-right
flip unless --hflip), bf16 mixed precision on a GPU, the best checkpoint by validation MAE,
resumable (--resume), progress bars and a `progress.json` that the portal shows.
"""

import argparse
import csv
import datetime as dt
import hashlib
import json
import math
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812
from tqdm import tqdm

from inference_worker import checkpoint, metrics
from inference_worker.model import build_model, sex_tensor
from inference_worker.preprocess import MEAN, STD, preprocess_file

PROGRESS = "progress.json"
LAST = "last.pt"


@dataclass
class Sample:
    path: Path
    age_days: float
    sex: str
    patient: str
    site: str


def read_manifest(path: Path, label_column: str = "recorded_age_days") -> list[Sample]:
    """Rows of a manifest CSV; `file` is relative to the manifest's folder."""
    samples = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            column = label_column if label_column in row else "age_days"
            samples.append(
                Sample(
                    path=(path.parent / row["file"]).resolve(),
                    age_days=float(row[column]),
                    sex=(row.get("sex") or "O").strip().upper()[:1] or "O",
                    patient=row.get("patient") or row["file"],
                    site=row.get("site") or "",
                )
            )
    return samples


def patient_split(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list, list]:
    """Whole patients go to one side: hash(seed, patient) decides, so the split is stable."""
    train, val = [], []
    for sample in samples:
        digest = hashlib.sha256(f"{seed}:{sample.patient}".encode()).digest()
        (val if int.from_bytes(digest[:4], "big") / 2**32 < val_fraction else train).append(sample)
    return train, val


def _load_one(args: tuple[str, int]) -> np.ndarray:
    tensor, _geometry, _sex = preprocess_file(args[0], args[1])
    return tensor.numpy().astype(np.float16)


def load_tensors(samples: list[Sample], size: int, cache_dir: Path, workers: int) -> Tensor:
    """Preprocess every image once (cached on disk by file list and size): N x 1 x S x S."""
    key = hashlib.sha256(json.dumps([str(s.path) for s in samples] + [size]).encode()).hexdigest()[
        :16
    ]
    cache = cache_dir / f"inputs-{size}-{key}.pt"
    if cache.exists():
        return torch.load(cache, weights_only=True)
    jobs = [(str(s.path), size) for s in samples]
    with tqdm(total=len(jobs), desc="preprocess", unit="img", file=sys.stderr) as bar:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                arrays = []
                for array in pool.map(_load_one, jobs, chunksize=16):
                    arrays.append(array)
                    bar.update(1)
        else:
            arrays = []
            for job in jobs:
                arrays.append(_load_one(job))
                bar.update(1)
    tensors = torch.from_numpy(np.stack(arrays))
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save(tensors, cache)
    return tensors


def augment(x: Tensor, *, hflip: bool, generator: torch.Generator) -> Tensor:
    """Plausible acquisition variation: rotation up to 7 degrees, scale 0.9-1.1, shift up to 5%,
    exposure and contrast jitter, noise. Left-right flips only when asked: the heart is left."""
    n = x.shape[0]

    def uniform(low: float, high: float) -> Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-7, 7) * math.pi / 180
    scale = uniform(0.9, 1.1)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin, uniform(-0.05, 0.05)], 1),
            torch.stack([sin, cos, uniform(-0.05, 0.05)], 1),
        ],
        1,
    )
    if hflip:
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        theta[:, 0, 0] *= flip
        theta[:, 1, 0] *= flip
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = -MEAN / STD  # what padding is after normalisation
    out = F.grid_sample(x - background, grid, align_corners=False, padding_mode="zeros")
    out = out + background
    gain = uniform(0.85, 1.15).view(n, 1, 1, 1)
    offset = uniform(-0.15, 0.15).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator) * 0.03
    return out * gain + offset + noise


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def predict_normalised(model: nn.Module, x: Tensor, sexes: list[str], batch_size: int) -> Tensor:
    device = next(model.parameters()).device
    outputs = []
    model.eval()
    with torch.no_grad(), _autocast(device):
        for i in range(0, len(x), batch_size):
            batch = x[i : i + batch_size].to(device).float()
            if device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            outputs.append(model(batch, sex_tensor(sexes[i : i + batch_size], device)).float())
    return torch.cat(outputs).cpu() if outputs else torch.zeros(0)


def _autocast(device: torch.device):
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    )


def _write_progress(out: Path, **state) -> None:
    tmp = out / f".{PROGRESS}.tmp"
    tmp.write_text(json.dumps({**state, "updated_at": dt.datetime.now(dt.UTC).isoformat()}))
    tmp.replace(out / PROGRESS)


def read_progress(out: Path) -> dict | None:
    try:
        return json.loads((out / PROGRESS).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    device = _device()
    samples = read_manifest(args.manifest, args.label_column)
    train_set, val_set = patient_split(samples, args.val_fraction, args.seed)
    if not train_set or not val_set:
        raise SystemExit("the patient-level split left the training or validation set empty")
    _write_progress(out, state="preprocessing", epoch=0, epochs=args.epochs)
    x_train = load_tensors(train_set, args.size, out / "cache", args.workers)
    x_val = load_tensors(val_set, args.size, out / "cache", args.workers)
    ages = np.array([s.age_days for s in train_set])
    age_mean, age_std = float(ages.mean()), float(ages.std() or 1.0)
    y_train = torch.tensor((ages - age_mean) / age_std, dtype=torch.float32)
    sex_train = [s.sex for s in train_set]

    model = build_model(args.arch, width=args.width).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup = min(steps_per_epoch, total_steps // 10 + 1)

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    start_epoch, best, history = 0, math.inf, []
    if args.resume and (out / LAST).exists():
        state = torch.load(out / LAST, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best = int(state["epoch"]), float(state["best"])
        history = json.loads(state["history"])
        print(f"resuming after epoch {start_epoch} (best MAE {best:.2f} months)", file=sys.stderr)

    generator = torch.Generator().manual_seed(args.seed)
    started, first_step = time.monotonic(), start_epoch * steps_per_epoch
    for epoch in range(start_epoch, args.epochs):
        model.train()
        order = torch.randperm(len(train_set), generator=generator)
        running = 0.0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{args.epochs}",
            unit="batch",
            file=sys.stderr,
        )
        for step in bar:
            idx = order[step * args.batch_size : (step + 1) * args.batch_size]
            x = augment(x_train[idx].float(), hflip=args.hflip, generator=generator).to(device)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            sex = sex_tensor([sex_train[i] for i in idx.tolist()], device)
            with _autocast(device):
                loss = F.l1_loss(model(x, sex).float(), y_train[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.item()
            bar.set_postfix(loss=f"{running / (step + 1):.3f}")
            if step % 10 == 0:
                position = epoch * steps_per_epoch + step + 1  # steps since the very start
                seconds_per_step = (time.monotonic() - started) / (position - first_step)
                _write_progress(
                    out,
                    state="training",
                    epoch=epoch + 1,
                    epochs=args.epochs,
                    step=step + 1,
                    steps=steps_per_epoch,
                    best_val_mae_months=None if math.isinf(best) else best,
                    eta_seconds=round((total_steps - position) * seconds_per_step),
                )
        bar.close()
        predicted = predict_normalised(model, x_val, [s.sex for s in val_set], args.batch_size)
        predicted_days = (predicted.numpy() * age_std + age_mean).clip(0, None)
        true_days = [s.age_days for s in val_set]
        report = metrics.report(true_days, predicted_days, [s.sex for s in val_set])
        mae = report["overall"]["mae_months"]
        history.append(
            {"epoch": epoch + 1, "train_l1": running / steps_per_epoch, "val_mae_months": mae}
        )
        print(
            f"epoch {epoch + 1}: train L1 {running / steps_per_epoch:.3f}, validation MAE "
            f"{mae:.2f} months",
            file=sys.stderr,
        )
        if mae < best:
            best = mae
            checkpoint.save(
                out,
                model,
                _card(args, train_set, val_set, age_mean, age_std, report, epoch + 1, history),
            )
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch + 1,
                "best": best,
                "history": json.dumps(history),
            },
            out / LAST,
        )
    card = checkpoint.read_card(out)
    _write_progress(
        out,
        state="done",
        epoch=args.epochs,
        epochs=args.epochs,
        best_val_mae_months=best,
        eta_seconds=0,
    )
    return card


def _card(args, train_set, val_set, age_mean, age_std, report, epoch, history) -> dict:
    everyone = train_set + val_set
    by_group_sex = {
        name: m["mae_months"] for name, m in report["by_group_sex"].items() if m["n"] >= 5
    }
    return {
        "name": args.name or args.out.name,
        "architecture": args.arch,
        "width": args.width,
        "input_size": args.size,
        "input_channels": 1,
        "normalisation": {
            "input_mean": MEAN,
            "input_std": STD,
            "age_mean_days": age_mean,
            "age_std_days": age_std,
        },
        "preprocessing": "modality LUT; VOI LUT, window, or 0.5-99.5 percentile window; "
        "MONOCHROME1 inverted; aspect-preserving resize and centred zero padding",
        "training_data": {
            "manifest": str(args.manifest),
            "label_column": args.label_column,
            "images": len(everyone),
            "patients": len({s.patient for s in everyone}),
            "train_images": len(train_set),
            "validation_images": len(val_set),
            "sites": sorted({s.site for s in everyone if s.site}),
            "age_days_min": min(s.age_days for s in everyone),
            "age_days_max": max(s.age_days for s in everyone),
            "synthetic": bool(args.synthetic),
        },
        "training": {
            "epochs": args.epochs,
            "best_epoch": epoch,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "seed": args.seed,
            "hflip": args.hflip,
            "history": history,
            "torch": torch.__version__,
        },
        "metrics": {"validation": report},
        # The portal's outlier score divides residuals by these (DESIGN.md, Score).
        "expected_error_months": {"overall": report["overall"]["mae_months"], **by_group_sex},
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a CA-ResNet pediatric age model.")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--arch", default="ca_resnet50")
    p.add_argument("--width", type=int, default=64, help="channels of the first stage")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--label-column", default="recorded_age_days")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hflip", action="store_true", help="allow left-right flips (off: anatomy)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--name", default="")
    p.add_argument("--synthetic", action="store_true", help="record that the data are phantoms")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    card = train(args)
    print(
        json.dumps(
            {
                "model": str(args.out),
                "sha256": card["sha256"],
                "val_mae_months": card["metrics"]["validation"]["overall"]["mae_months"],
            }
        )
    )


if __name__ == "__main__":
    main()
