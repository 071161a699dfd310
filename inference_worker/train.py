"""Train a CA-ResNet age model: the paper's method for a site's real, curated data.

    python -m inference_worker.train --manifest CSV --out DIR [--arch ca_resnet50] [--size 512]
                                     [--epochs N] [--batch-size B] [--lr LR] [--width W] ...
    torchrun --nproc_per_node N -m inference_worker.train ...      (one process per GPU)

Patient-level split, AdamW, cosine schedule with warm-up, L1 loss on a normalised age,
augmentation that keeps anatomy plausible (small rotation, scale, shift, exposure; no left-right
flip unless --hflip) applied in batch on the training device, bf16 mixed precision on a GPU, the
best checkpoint by validation MAE, resumable (--resume), progress bars and a `progress.json` that
the portal shows. Images are preprocessed once into a memory-mapped cache (`dataset.py`), so
memory does not grow with the dataset. Under torchrun: DistributedDataParallel (NCCL on CUDA,
gloo on the CPU), each rank trains on its own share of every epoch, validation predictions are
gathered from every rank, and rank 0 alone writes checkpoints, progress and the model card.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from inference_worker import checkpoint, distributed, metrics, progress
from inference_worker.ages import normalise_sex
from inference_worker.dataset import DTYPES, CachedImages, build_cache, collate, to_input
from inference_worker.distributed import Ranks
from inference_worker.model import POOLS, build_model, sex_tensor
from inference_worker.preprocess import MEAN, STD

PROGRESS = progress.PROGRESS
LAST = "last.pt"
SAMPLES = "samples-rank{rank}.json"  # --record-samples: the manifest rows each rank trained on


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
                    sex=normalise_sex(row.get("sex")),
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


def augment(x: Tensor, *, hflip: bool, generator: torch.Generator) -> Tensor:
    """Plausible acquisition variation: rotation up to 7 degrees, scale 0.9-1.1, shift up to 5%,
    exposure and contrast jitter, noise. Left-right flips only when asked: the heart is left.
    Runs in batch on x's device (the generator must live there too): on a GPU the CPU never
    touches a pixel."""
    n, device = x.shape[0], x.device

    def uniform(low: float, high: float) -> Tensor:
        return torch.rand(n, generator=generator, device=device) * (high - low) + low

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
        flip = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
        theta[:, 0, 0] *= flip
        theta[:, 1, 0] *= flip
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = -MEAN / STD  # what padding is after normalisation
    out = F.grid_sample(x - background, grid, align_corners=False, padding_mode="zeros")
    out = out + background
    gain = uniform(0.85, 1.15).view(n, 1, 1, 1)
    offset = uniform(-0.15, 0.15).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator, device=device) * 0.03
    return out * gain + offset + noise


def _autocast(device: torch.device):
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    )


def train(args: argparse.Namespace) -> dict:
    """Train as one process, or as one rank of a torchrun job (WORLD_SIZE > 1 in the
    environment); returns the best checkpoint's card (an empty dict on ranks other than 0)."""
    ranks = Ranks.from_environment()
    device = distributed.device_for(ranks)
    with distributed.process_group(ranks, device):
        return _train(args, ranks, device)


def _loader(data: CachedImages, batch_size: int, workers: int, device, sampler=None):
    """Worker processes start from a fork server, never by forking this process: a fork of a
    threaded process (a Celery worker, pytest) can inherit a held lock and hang."""
    return DataLoader(
        data,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        multiprocessing_context="forkserver" if workers > 0 else None,
    )


def _train(args: argparse.Namespace, ranks: Ranks, device: torch.device) -> dict:
    torch.manual_seed(args.seed + ranks.rank)  # dropout differs per rank; DDP syncs the weights
    random.seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    samples = read_manifest(args.manifest, args.label_column)
    train_set, val_set = patient_split(samples, args.val_fraction, args.seed)
    if not train_set or not val_set:
        raise SystemExit("the patient-level split left the training or validation set empty")
    if ranks.main:
        progress.write(out, state="preprocessing", epoch=0, epochs=args.epochs, images=len(samples))
    # One cache over the whole manifest: another split or seed reuses it.
    cache = build_cache(
        [s.path for s in samples],
        args.size,
        args.cache_dir or out / "cache",
        workers=args.workers,
        dtype=args.cache_dtype,
    )
    row_of = {id(s): i for i, s in enumerate(samples)}
    train_rows = np.array([row_of[id(s)] for s in train_set], dtype=np.int64)
    val_rows = np.array([row_of[id(s)] for s in val_set], dtype=np.int64)
    ages = np.array([s.age_days for s in train_set])
    age_mean, age_std = float(ages.mean()), float(ages.std() or 1.0)
    parent = None
    if args.init_from:  # fine-tuning keeps the parent's scale: its head already speaks it
        parent, parent_card = checkpoint.load(args.init_from)
        if checkpoint.model_options(parent_card) != _model_options(args):
            raise SystemExit(f"--init-from {args.init_from}: another architecture, width or pool")
        norm = parent_card["normalisation"]
        age_mean, age_std = float(norm["age_mean_days"]), float(norm["age_std_days"])

    def subset(rows: np.ndarray, chosen: list[Sample]) -> CachedImages:
        targets = torch.tensor([(s.age_days - age_mean) / age_std for s in chosen])
        return CachedImages(cache, rows, targets.float(), sex_tensor([s.sex for s in chosen]))

    train_data = subset(train_rows, train_set)
    # Validation: rank r predicts items r, r + world, ...; the gather puts them back in order.
    val_data = subset(val_rows[ranks.rank :: ranks.world], val_set[ranks.rank :: ranks.world])
    sampler = DistributedSampler(
        train_data, num_replicas=ranks.world, rank=ranks.rank, shuffle=True, seed=args.seed
    )
    workers = args.loader_workers
    if workers is None:  # the CPU needs its cores for the model; a GPU needs feeding
        workers = min(4, distributed.cores() // ranks.local_world) if device.type == "cuda" else 0
    train_loader = _loader(train_data, args.batch_size, workers, device, sampler)
    val_loader = _loader(val_data, args.batch_size, workers, device)

    net = build_model(**_model_options(args))
    if parent is not None:
        net.load_state_dict(parent.state_dict())
    net = net.to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # one input size throughout
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * args.epochs
    warmup = min(steps_per_epoch, total_steps // 10 + 1)

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    start_epoch, best, history = 0, math.inf, []
    state = None
    if args.resume:  # rank 0 reads it and sends it: other machines need no copy of OUT
        has_last = ranks.main and (out / LAST).exists()
        state = torch.load(out / LAST, map_location="cpu", weights_only=True) if has_last else None
        state = distributed.from_main(state, ranks)
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best = int(state["epoch"]), float(state["best"])
        history = json.loads(state["history"])
        if ranks.main:
            print(
                f"resuming after epoch {start_epoch} (best MAE {best:.2f} months)", file=sys.stderr
            )
    # The schedule continues from the steps done (with this run's steps per epoch, so a resumed
    # run may use another number of processes or epochs).
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor, last_epoch=start_epoch * steps_per_epoch - 1
    )
    model = distributed.wrap(net, ranks, device)

    generator = torch.Generator(device=device).manual_seed(args.seed + 1_000_003 * ranks.rank)
    recorded: dict[str, list[int]] = {}
    started, first_step = time.monotonic(), start_epoch * steps_per_epoch
    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)
        model.train()
        running = torch.zeros((), device=device)
        trained_rows: list[int] = []
        bar = tqdm(
            train_loader,
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{args.epochs}",
            unit="batch",
            file=sys.stderr,
            disable=not ranks.main,
        )
        for step, batch in enumerate(bar):
            x = to_input(batch.pixels, device, args.cache_dtype)
            x = augment(x, hflip=args.hflip, generator=generator)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            sex = batch.sexes.to(device, non_blocking=True)
            with _autocast(device):
                output = model(x, sex).float()
            loss = F.l1_loss(output, batch.targets.to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.detach()
            if args.record_samples:
                trained_rows.extend(train_rows[batch.items.numpy()].tolist())
            if step % 10 == 0 and ranks.main:  # reading the loss waits for the GPU: not every step
                bar.set_postfix(loss=f"{running.item() / (step + 1):.3f}")
                position = epoch * steps_per_epoch + step + 1  # steps since the very start
                seconds_per_step = (time.monotonic() - started) / (position - first_step)
                progress.write(
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
        if args.record_samples:
            recorded[str(epoch + 1)] = trained_rows
            _write_json(out / SAMPLES.format(rank=ranks.rank), {"world": ranks.world, **recorded})
        train_l1 = distributed.mean(running, ranks) / steps_per_epoch
        distributed.sync_buffers(net, ranks)
        predicted = distributed.gather_strided(
            _predict(net, val_loader, device, args.cache_dtype), ranks, len(val_set)
        )
        predicted_days = (predicted * age_std + age_mean).clip(0, None)
        true_days = [s.age_days for s in val_set]
        report = metrics.report(true_days, predicted_days, [s.sex for s in val_set])
        mae = report["overall"]["mae_months"]
        history.append({"epoch": epoch + 1, "train_l1": train_l1, "val_mae_months": mae})
        if ranks.main:
            print(
                f"epoch {epoch + 1}: train L1 {train_l1:.3f}, validation MAE {mae:.2f} months",
                file=sys.stderr,
            )
            if mae < best:
                card = _card(
                    args, train_set, val_set, age_mean, age_std, report, epoch + 1, history
                )
                card["training"]["processes"] = ranks.world
                checkpoint.save(out, net, card)
            torch.save(
                {
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch + 1,
                    "best": min(best, mae),
                    "history": json.dumps(history),
                },
                out / LAST,
            )
        best = min(best, mae)
    distributed.barrier(ranks)  # every rank leaves after rank 0 has written the last checkpoint
    if not ranks.main:
        return {}
    card = checkpoint.read_card(out)
    progress.write(
        out,
        state="done",
        epoch=args.epochs,
        epochs=args.epochs,
        best_val_mae_months=best,
        eta_seconds=0,
    )
    return card


def _predict(net: nn.Module, loader: DataLoader, device: torch.device, dtype: str) -> np.ndarray:
    """Normalised ages for a loader's items, in order, without augmentation."""
    outputs = []
    net.eval()
    with torch.no_grad(), _autocast(device):
        for batch in loader:
            x = to_input(batch.pixels, device, dtype)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            outputs.append(net(x, batch.sexes.to(device, non_blocking=True)).float().cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros(0, dtype=np.float32)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _card(args, train_set, val_set, age_mean, age_std, report, epoch, history) -> dict:
    everyone = train_set + val_set
    by_group_sex = {
        name: m["mae_months"] for name, m in report["by_group_sex"].items() if m["n"] >= 5
    }
    return {
        "name": args.name or args.out.name,
        "architecture": args.arch,
        "width": args.width,
        "pool": args.pool,
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


def _model_options(args: argparse.Namespace) -> dict:
    return {"arch": args.arch, "width": args.width, "pool": args.pool}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a CA-ResNet pediatric age model.")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--arch", default="ca_resnet50")
    p.add_argument("--width", type=int, default=64, help="channels of the first stage")
    p.add_argument("--pool", choices=list(POOLS), default="avg", help="the head's global pooling")
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
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="preprocessing processes (one thread each) when the cache is built",
    )
    p.add_argument(
        "--loader-workers",
        type=int,
        default=None,
        help="DataLoader processes reading the cache per rank (default: 4 on a GPU, 0 on the CPU)",
    )
    p.add_argument("--cache-dir", type=Path, help="preprocessed image cache (default: OUT/cache)")
    p.add_argument(
        "--cache-dtype",
        choices=sorted(DTYPES),
        default="uint16",
        help="integers the cache stores (uint8 halves the disk, at 8-bit precision)",
    )
    p.add_argument(
        "--record-samples",
        action="store_true",
        help=f"each rank writes the manifest rows it trained on to OUT/{SAMPLES}",
    )
    p.add_argument("--name", default="")
    p.add_argument(
        "--init-from",
        type=Path,
        help="fine-tune: start from this checkpoint folder's weights and age normalisation",
    )
    p.add_argument("--synthetic", action="store_true", help="record that the data are phantoms")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    # torchrun's processes on one machine share its cores.
    torch.set_num_threads(max(1, distributed.cores() // Ranks.from_environment().local_world))
    card = train(args)
    if not card:
        return
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
