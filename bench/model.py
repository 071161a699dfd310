"""Model benchmark on this machine's CPU (or a GPU where there is one), all in one run:

- images/s of CA-ResNet against the plain ResNet of the same depth and input size (goal: time
  ratio at most 1.10; on a CPU the reference CA runs, on CUDA the fused one: see bench/gpu.py);
- achieved GFLOP/s of the forward pass over the GFLOP/s of a large matrix product (goal: 50%);
- prediction + heatmap time over prediction time (goal: at most 1.15);
- the demo model's MAE on phantoms of an unseen seed, per site profile, against predicting the
  training mean.

    python bench/model.py [--depth 50] [--size 256] [--batch 8] [--demo var/models/demo]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from inference_worker import checkpoint, metrics, synthetic  # noqa: E402
from inference_worker.heatmap import predict_with_cam  # noqa: E402
from inference_worker.model import build_model, sex_tensor  # noqa: E402
from inference_worker.predict import load_predictor  # noqa: E402


def compare(fns: dict, repeats: int) -> dict[str, float]:
    """Best wall-clock seconds of each function, calls interleaved so that the machine's
    drifts hit all of them alike (one warm-up call each first)."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--demo", type=Path, default=ROOT / "var" / "models" / "demo")
    parser.add_argument("--phantoms", type=int, default=100, help="per site profile")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # channels-last, as the inference worker runs the network
    x = torch.randn(args.batch, 1, args.size, args.size, device=device).contiguous(
        memory_format=torch.channels_last
    )
    sex = sex_tensor(["M", "F"] * (args.batch // 2) + ["O"] * (args.batch % 2), device)
    print(
        f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, "
        f"input {args.size}x{args.size}"
    )

    models = {
        arch: build_model(arch).to(device, memory_format=torch.channels_last).eval()
        for arch in (f"resnet{args.depth}", f"ca_resnet{args.depth}")
    }
    with torch.no_grad():
        seconds = compare({a: (lambda m=m: m(x, sex)) for a, m in models.items()}, args.repeats)
    rates = {arch: args.batch / s for arch, s in seconds.items()}
    for arch, rate in rates.items():
        print(f"{arch:<14} {rate:8.2f} images/s")
    ratio = rates[f"resnet{args.depth}"] / rates[f"ca_resnet{args.depth}"]
    print(
        f"CA-ResNet-{args.depth} / ResNet-{args.depth} forward time: {ratio:.3f}, CA costs "
        f"{(ratio - 1) * 100:.1f}% (goal: at most 1.10)"
    )

    model = models[f"ca_resnet{args.depth}"]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, sex)
    flops = counter.get_total_flops()

    def predict_only() -> torch.Tensor:
        with torch.no_grad():
            return model(x, sex)

    n = 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = compare(
        {
            "predict": predict_only,
            "with_heatmap": lambda: predict_with_cam(model, x, sex),
            "matmul": lambda: a @ b,
        },
        args.repeats,
    )
    forward_s, with_cam_s = best["predict"], best["with_heatmap"]
    achieved, peak = flops / forward_s / 1e9, 2 * n**3 / best["matmul"] / 1e9
    print(
        f"forward {flops / args.batch / 1e9:.2f} GFLOP/image, {achieved:.1f} GFLOP/s; "
        f"matmul {peak:.1f} GFLOP/s; ratio {achieved / peak:.2f} (goal: at least 0.5)"
    )

    print(f"prediction + heatmap / prediction = {with_cam_s / forward_s:.3f} (goal: at most 1.15)")

    if not (args.demo / checkpoint.CARD).exists():
        print(f"demo model: none at {args.demo} (make run trains it); MAE skipped")
        return
    predictor = load_predictor(str(args.demo))
    mean_age = predictor.age_mean
    with tempfile.TemporaryDirectory() as tmp:
        for profile in sorted(synthetic.PROFILES):
            rows = synthetic.generate(
                Path(tmp) / profile,
                args.phantoms,
                seed=987_654,
                profile=profile,
                workers=os.cpu_count() or 1,
            )
            files = [str(Path(tmp) / profile / r["file"]) for r in rows]
            results = predictor.run(files, batch_size=16)
            true = [r["true_age_days"] for r in rows]
            mae = metrics.compute(true, [r.age_days for r in results]).mae_months
            baseline = metrics.compute(true, [mean_age] * len(true)).mae_months
            seen = profile in predictor.card["training_data"]["sites"]
            print(
                f"demo model on {args.phantoms} unseen-seed '{profile}' phantoms "
                f"({'training site' if seen else 'site not in training'}): MAE {mae:.1f} "
                f"months; predicting the mean: {baseline:.1f} months"
            )


if __name__ == "__main__":
    main()
