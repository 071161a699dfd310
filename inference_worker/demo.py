"""The demo model: a small CA-ResNet trained here on phantoms of two site profiles.

    python -m inference_worker.demo --out var/models/demo [--data DIR] [--count 1500]

Recipe: 1,500 phantoms from each of the `north` and `south` profiles (clean labels), CA-ResNet-18
at width 8 on 256 x 256 inputs with average and maximum pooling side by side, 25 epochs, batch 32,
AdamW at 2e-3 with cosine decay (the counts and their cost on two CPU cores are in `progress`:
`progress.demo_expected_minutes()`). It does far better than predicting the mean age, but it is
trained on synthetic phantoms and says nothing about real children. A finished model is reused: the
command returns at once when the folder holds a checkpoint whose weights match their card."""

import argparse
import csv
import datetime as dt
import fcntl
import os
import sys
import time
from pathlib import Path

# OpenMP threads that wait sleep rather than spin (read when torch loads): on two cores shared
# with the portal's workers, spinning made a training step 8 times slower (2.2 CPU-seconds a
# step against 0.28).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from inference_worker import checkpoint, progress, synthetic, train

PROFILES = (("north", 101), ("south", 202))
BUSY = 75  # EX_TEMPFAIL: another process is training it
RECIPE = [
    "--arch",
    "ca_resnet18",
    "--width",
    "8",
    "--pool",
    "avgmax",
    "--size",
    "256",
    "--epochs",
    str(progress.DEMO_EPOCHS),
    "--batch-size",
    "32",
    "--lr",
    "2e-3",
    "--val-fraction",
    "0.15",
    "--synthetic",
    "--name",
    "demo-ca-resnet18-phantoms",
]


def make_data(data: Path, count: int, workers: int, out: Path, epochs: int) -> Path:
    """Phantoms of both profiles and one manifest over them (reused when complete); the
    progress file in `out` counts them (at most once a second)."""
    manifest = data / "manifest.csv"
    if manifest.exists():
        return manifest
    rows: list[dict] = []
    total, started = count * len(PROFILES), dt.datetime.now(dt.UTC).isoformat()
    last = 0.0

    def counted(done: int) -> None:
        nonlocal last
        if time.monotonic() - last >= 1 or len(rows) + done == total:
            last = time.monotonic()
            progress.write(
                out,
                state=progress.PHANTOMS,
                done=len(rows) + done,
                total=total,
                started_at=started,
                images=total,
                epochs=epochs,
            )

    counted(0)
    for profile, seed in PROFILES:
        folder = data / profile
        made = synthetic.generate(
            folder, count, seed, profile, 0.0, workers, progress=True, on_row=counted
        )
        rows.extend({**row, "file": f"{profile}/{row['file']}"} for row in made)
    tmp = data / ".manifest.csv.tmp"
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=synthetic.MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(manifest)
    return manifest


def ready(out: Path) -> bool:
    """Trained to the end, and the weights still match their card."""
    try:
        checkpoint.verify(out)
    except checkpoint.CheckpointError:
        return False
    return (progress.read(out) or {}).get("state") == progress.DONE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train (or reuse) the phantom demo model.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="phantom folder (default: OUT/../phantoms)")
    parser.add_argument(
        "--count", type=int, default=progress.DEMO_COUNT, help="phantoms per site profile"
    )
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    if ready(args.out):
        print(f"demo model ready: {args.out}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    lock = (args.out / ".training.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"demo model: already being trained in {args.out}", file=sys.stderr)
        return BUSY
    workers = os.cpu_count() or 1
    torch.set_num_threads(workers)
    data = args.data or args.out.parent / "phantoms"
    epochs = args.epochs or progress.DEMO_EPOCHS
    manifest = make_data(data, args.count, workers, args.out, epochs)
    recipe = list(RECIPE)
    if args.epochs:
        recipe[recipe.index("--epochs") + 1] = str(args.epochs)
    targs = train.parser().parse_args(
        ["--manifest", str(manifest), "--out", str(args.out), "--resume", *recipe]
    )
    card = train.train(targs)
    mae = card["metrics"]["validation"]["overall"]["mae_months"]
    print(f"demo model trained: {args.out}, validation MAE {mae:.1f} months", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
