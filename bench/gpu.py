"""Issue 10's table and goals in one run, every figure a ratio measured side by side.

On a GPU (bf16 autocast, channels-last, batch 64, 512 px, as the issue measured it) and on the
CPU with smaller sizes (fp32) so that it is checked where there is no GPU:

- matrix-product rate; ResNet-50 and CA-ResNet-50 forward (images/s, share of the matrix rate)
  and their time ratio for the forward pass and a training step, eager and compiled;
- one CA block against copying its input, fused kernels and the PyTorch reference;
- forward + Grad-CAM over forward;
- `python -m inference_worker.predict --json`: milliseconds per image and stage, images/s,
  heatmap file sizes;
- `python -m inference_worker.train`: cache building (phantoms/s), the CLI's training
  throughput against the bare training step, and its peak anonymous memory for two dataset sizes.

    python bench/gpu.py [--skip compile,predict,...] [--compile] [--budget SECONDS]

A figure that cannot be measured is printed with the reason. Sections: matmul, forward, step,
block, gradcam, compile, train, predict (predict uses the checkpoint `train` writes).
"""

import argparse
import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F  # noqa: N812
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from inference_worker import fused_ca, synthetic  # noqa: E402
from inference_worker.model import CoordAttention, build_model, sex_tensor  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
CL = torch.channels_last


@dataclass(frozen=True)
class Sizes:
    batch: int
    size: int
    block: tuple[int, int, int, int]
    matmul: int
    repeats: int
    phantoms: int  # predict CLI
    train_images: int  # train CLI
    train_batch: int
    train_size: int


GPU_SIZES = Sizes(64, 512, (64, 256, 128, 128), 8192, 10, 2000, 1024, 64, 512)
CPU_SIZES = Sizes(4, 128, (4, 256, 32, 32), 1024, 5, 32, 48, 8, 64)
DTYPE = torch.bfloat16 if CUDA else torch.float32
STARTED = time.monotonic()


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def compare(fns: dict[str, Callable[[], object]], repeats: int, inner: int = 1) -> dict:
    """Best seconds per call of each function, calls interleaved so that drifts of the machine
    hit all of them alike (one warm-up call each first)."""
    for fn in fns.values():
        fn()
    sync()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            sync()
            best[name] = min(best[name], (time.perf_counter() - start) / inner)
    return best


def autocast():
    return torch.autocast("cuda", dtype=torch.bfloat16) if CUDA else contextlib.nullcontext()


@contextlib.contextmanager
def fused(enabled: bool):
    """The fused CA on or off (the model reads the switch at forward time)."""
    old = os.environ.get(fused_ca.ENV_SWITCH)
    os.environ[fused_ca.ENV_SWITCH] = "1" if enabled else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ[fused_ca.ENV_SWITCH]
        else:
            os.environ[fused_ca.ENV_SWITCH] = old


def line(figure: str, value: str) -> None:
    print(f"  {figure:<58} {value}", flush=True)


def why(exc: BaseException) -> str:
    return f"not measured: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"


class Bench:
    def __init__(self, sizes: Sizes, args: argparse.Namespace) -> None:
        self.s, self.args = sizes, args
        self.x = torch.randn(sizes.batch, 1, sizes.size, sizes.size, device=DEVICE)
        self.x = self.x.contiguous(memory_format=CL)
        self.sex = sex_tensor(["M", "F"] * (sizes.batch // 2) + ["O"] * (sizes.batch % 2), DEVICE)
        self.models = {
            arch: build_model(arch).to(DEVICE, memory_format=CL)
            for arch in ("resnet50", "ca_resnet50")
        }
        self.matmul_flops = float("nan")
        self.bare_step_rate: float | None = None

    def forward_fn(self, model):
        def run():
            with torch.no_grad(), autocast():
                return model(self.x, self.sex)

        return run

    def step_fn(self, model, optimizer):
        target = torch.zeros(self.s.batch, device=DEVICE)

        def run():
            with autocast():
                loss = F.l1_loss(model(self.x, self.sex).float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return run

    # -- sections ------------------------------------------------------------------------------

    def matmul(self) -> None:
        n = self.s.matmul
        a = torch.randn(n, n, device=DEVICE, dtype=DTYPE)
        b = torch.randn(n, n, device=DEVICE, dtype=DTYPE)
        seconds = compare({"mm": lambda: a @ b}, self.s.repeats, inner=5 if CUDA else 1)["mm"]
        self.matmul_flops = 2 * n**3 / seconds
        line(f"{str(DTYPE)[6:]} matrix product ({n}^3)", f"{self.matmul_flops / 1e12:.2f} TFLOP/s")

    def forward(self) -> None:
        for m in self.models.values():
            m.eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            self.models["ca_resnet50"](self.x, self.sex)
        flops = {"ca_resnet50": counter.get_total_flops()}
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            self.models["resnet50"](self.x, self.sex)
        flops["resnet50"] = counter.get_total_flops()
        fns = {a: self.forward_fn(m) for a, m in self.models.items()}
        if CUDA:  # the reference CA in the same model, side by side
            fused_fn = fns["ca_resnet50"]

            def reference():
                with fused(False):
                    return fused_fn()

            fns["ca_resnet50 (reference CA)"] = reference
        seconds = compare(fns, self.s.repeats)
        for name, sec in seconds.items():
            arch = name.split()[0]
            rate = self.s.batch / sec
            share = flops[arch] / sec / self.matmul_flops
            line(f"{name} forward", f"{rate:,.0f} img/s, {share * 100:.1f}% of the matrix rate")
        ratio = seconds["ca_resnet50"] / seconds["resnet50"]
        goal = "1.15 (H100)" if CUDA else "1.10 (CPU)"
        line("CA-ResNet-50 / ResNet-50 forward time", f"{ratio:.3f} (goal: at most {goal})")
        if CUDA:
            line(
                "  reference CA / fused CA, whole model forward",
                f"{seconds['ca_resnet50 (reference CA)'] / seconds['ca_resnet50']:.3f}",
            )

    def step(self) -> None:
        fns = {}
        for arch, model in self.models.items():
            model.train()
            fns[arch] = self.step_fn(model, torch.optim.AdamW(model.parameters(), lr=1e-5))
        seconds = compare(fns, max(2, self.s.repeats // 2))
        for arch, sec in seconds.items():
            line(f"{arch} training step", f"{self.s.batch / sec:,.1f} img/s")
        ratio = seconds["ca_resnet50"] / seconds["resnet50"]
        line("CA-ResNet-50 / ResNet-50 training step time", f"{ratio:.3f} (goal: at most 1.15)")

    def block(self) -> None:
        n, c, h, w = self.s.block
        x = torch.randn(n, c, h, w, device=DEVICE, dtype=DTYPE).contiguous(memory_format=CL)
        block = CoordAttention(c).to(DEVICE, DTYPE).eval()
        # Grad mode on (no gradient recorded): the out-of-place path, like a copy.
        fns = {"copy": x.clone, "reference": lambda: block.forward_reference(x)}
        if fused_ca.usable(x):
            fns["fused"] = lambda: fused_ca.coord_attention(block, x)
        inner = 10 if CUDA else 1
        seconds = compare(fns, self.s.repeats, inner)
        shape = "x".join(map(str, self.s.block))
        line(f"copying a {shape} {str(DTYPE)[6:]} tensor", f"{seconds['copy'] * 1e3:.3f} ms")
        for name in ("reference", "fused"):
            if name in seconds:
                ratio = seconds[name] / seconds["copy"]
                goal = " (goal: at most 2)" if name == "fused" else ""
                line(
                    f"one CA block, {name}",
                    f"{seconds[name] * 1e3:.3f} ms, {ratio:.2f} x the copy{goal}",
                )
        if "fused" not in seconds:
            line("one CA block, fused", "not measured: the fused path needs CUDA and Triton")
        # forward + backward, as in training
        xg = x.detach().requires_grad_()
        grad = torch.randn_like(x)

        def train_fn(fn):
            return lambda: torch.autograd.grad(fn(xg), xg, grad)

        block.train()
        fns = {"reference": train_fn(block.forward_reference)}
        if fused_ca.usable(x):
            fns["fused"] = train_fn(lambda t: fused_ca.coord_attention(block, t))
        seconds_t = compare(fns, self.s.repeats, inner)
        for name, sec in seconds_t.items():
            line(
                f"one CA block forward + backward, {name}",
                f"{sec * 1e3:.3f} ms, {sec / seconds['copy']:.2f} x the copy",
            )

    def gradcam(self) -> None:
        from inference_worker.heatmap import predict_with_cam

        model = self.models["ca_resnet50"].eval()

        def with_cam():
            with autocast():
                return predict_with_cam(model, self.x, self.sex)

        seconds = compare({"forward": self.forward_fn(model), "cam": with_cam}, self.s.repeats)
        line("forward + Grad-CAM / forward", f"{seconds['cam'] / seconds['forward']:.3f}")

    def compile(self) -> None:
        if not (CUDA or self.args.compile):
            line("compiled figures", "skipped on the CPU (minutes of compiling; --compile)")
            return
        for kind in ("forward", "training step"):
            spent = time.monotonic() - STARTED
            if spent > self.args.budget * 0.6:
                line(
                    f"compiled {kind}", f"skipped: {spent:.0f} s of the {self.args.budget} s spent"
                )
                continue
            fns = {}
            for arch, model in self.models.items():
                compiled = torch.compile(model)
                if kind == "forward":
                    model.eval()
                    fns[arch] = self.forward_fn(compiled)
                else:
                    model.train()
                    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
                    fns[arch] = self.step_fn(compiled, optimizer)
            started = time.monotonic()
            try:
                for fn in fns.values():  # compile outside the timed calls
                    fn()
                seconds = compare(fns, max(3, self.s.repeats // 2))
            except Exception as exc:  # noqa: BLE001 (print why, go on)
                line(f"compiled {kind}", why(exc))
                continue
            took = time.monotonic() - started
            for arch, sec in seconds.items():
                line(f"{arch} compiled {kind}", f"{self.s.batch / sec:,.1f} img/s")
            ratio = seconds["ca_resnet50"] / seconds["resnet50"]
            line(
                f"CA-ResNet-50 / ResNet-50 compiled {kind} time",
                f"{ratio:.3f} (goal: at most 1.15; compiling took {took:.0f} s)",
            )

    # -- the CLIs ------------------------------------------------------------------------------

    def phantoms(self, folder: Path, count: int, unique: int) -> list[dict]:
        """`count` phantoms: `unique` generated, the rest copies under new names (decoding
        costs the same), with a manifest of distinct patients."""
        rows = synthetic.generate(
            folder, min(unique, count), seed=4242, profile="north", workers=os.cpu_count() or 1
        )
        out = []
        for i in range(count):
            row = dict(rows[i % len(rows)])
            if i >= len(rows):
                name = f"copy-{i:06d}.dcm"
                shutil.copyfile(folder / rows[i % len(rows)]["file"], folder / name)
                row.update(file=name, patient=f"{row['patient']}-copy{i}")
            out.append(row)
        return out

    def train(self, work: Path) -> Path | None:
        """Cache building rate, CLI throughput against the bare step (the difference between a
        1- and a 3-epoch run over the same prebuilt cache, so start-up cancels),
        peak anonymous memory for the full and a quarter data set. Returns the checkpoint."""
        from inference_worker import train as train_cli

        s = self.s
        folder = work / "train"
        # ~4% validation: most images train; whole patients per side
        count = s.train_images + max(4, s.train_images // 25)
        rows = self.phantoms(folder, count, unique=min(count, 256 if CUDA else count))
        manifest = write_manifest(folder / "manifest.csv", rows)
        quarter = write_manifest(folder / "quarter.csv", rows[: max(16, count // 4)])
        cache = work / "cache"
        try:
            from inference_worker.dataset import build_cache

            samples = train_cli.read_manifest(manifest)
            started = time.perf_counter()
            build_cache(
                [p.path for p in samples],
                s.train_size,
                cache,
                workers=os.cpu_count() or 1,
                progress=False,
            )
            rate = len(samples) / (time.perf_counter() - started)
            line(
                f"train cache: {len(samples)} phantoms, {s.train_size} px, {os.cpu_count()} cores",
                f"{rate:,.0f} phantoms/s (goal: at least 1,000 on 16 cores)",
            )
        except Exception as exc:  # noqa: BLE001
            line("train cache building", why(exc))

        base = [
            "--arch", "ca_resnet50", "--size", str(s.train_size),
            "--batch-size", str(s.train_batch), "--val-fraction", "0.04",
            "--cache-dir", str(cache), "--synthetic",
        ]  # fmt: skip
        runs = {}
        for name, epochs, data in (
            ("quarter", 1, quarter),  # first: it also warms the start-up
            ("one", 1, manifest),
            ("three", 3, manifest),
        ):
            out = work / f"model-{name}"
            cmd = ["-m", "inference_worker.train", "--manifest", str(data), "--out", str(out)]
            runs[name] = run_cli([*cmd, *base, "--epochs", str(epochs)], watch_memory=True)
            if runs[name].error:
                line(f"train CLI ({epochs} epoch(s), {data.name})", runs[name].error)
                return None
        trained = sum(
            1 for r in train_cli.patient_split(train_cli.read_manifest(manifest), 0.04, 0)[0]
        )
        epoch_s = (runs["three"].seconds - runs["one"].seconds) / 2
        cli_rate = trained / epoch_s if epoch_s > 0 else float("nan")
        model = build_model("ca_resnet50").to(DEVICE, memory_format=CL).train()
        x = torch.randn(s.train_batch, 1, s.train_size, s.train_size, device=DEVICE)
        x = x.contiguous(memory_format=CL)
        sex, target = (
            self.sex[:1].expand(s.train_batch, 2),
            torch.zeros(s.train_batch, device=DEVICE),
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def step():
            with autocast():
                loss = F.l1_loss(model(x, sex).float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        bare = s.train_batch / compare({"step": step}, max(3, s.repeats // 2))["step"]
        line(
            f"train CLI vs bare step (ca_resnet50, batch {s.train_batch}, {s.train_size} px)",
            f"{cli_rate:,.0f} vs {bare:,.0f} img/s = {cli_rate / bare:.2f} (goal: at least 0.90;"
            f" CLI epoch {epoch_s:.1f} s for {trained} images, incl. validation)",
        )
        full, small = runs["one"].peak_anon_mb, runs["quarter"].peak_anon_mb
        if full and small:
            line(
                f"train CLI peak anonymous memory, {count} vs {max(16, count // 4)} images",
                f"{full:,.0f} vs {small:,.0f} MB = {full / small:.2f} (goal: about 1, whatever"
                " the data set's size)",
            )
        else:
            line("train CLI peak anonymous memory", "not measured: no /proc on this system")
        per_image = s.train_size**2 * 2  # the uint16 cache
        line(
            "128,000 images at 512 px: cache on disk (mapped, not held)",
            f"{128_000 * 512 * 512 * 2 / 1e9:.0f} GB uint16; {per_image:,} bytes/image here",
        )
        return work / "model-one"

    def predict(self, work: Path, model_dir: Path | None) -> None:
        from inference_worker import checkpoint

        if model_dir is None or not (model_dir / checkpoint.CARD).exists():
            line(
                "predict CLI",
                "not measured: no checkpoint (the train section failed or was skipped)",
            )
            return
        folder = work / "predict"
        rows = self.phantoms(folder, self.s.phantoms, unique=min(self.s.phantoms, 256))
        files = [str(folder / r["file"]) for r in rows]
        heatmaps = work / "heatmaps"
        cmd = ["-m", "inference_worker.predict", *files, "--model", str(model_dir)]
        result = run_cli([*cmd, "--heatmaps", str(heatmaps), "--json"])
        if result.error and not result.stdout:
            line("predict CLI", result.error)
            return
        answers = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
        ok = [a for a in answers if "ms" in a and not a.get("error")]
        if not ok:
            line("predict CLI", f"not measured: no successful result ({len(answers)} answers)")
            return
        stages = list(ok[0]["ms"])
        mean = {k: sum(a["ms"].get(k, 0.0) for a in ok) / len(ok) for k in stages}
        line(
            f"predict CLI, {len(ok)} of {len(files)} images, ms per image",
            ", ".join(f"{k} {v:.2f}" for k, v in mean.items()),
        )
        if mean.get("predict"):
            line(
                "  encode / predict",
                f"{mean.get('encode', 0.0) / mean['predict']:.3f} (goal: under 0.10)",
            )
        line(
            "  images/s, whole CLI run (start-up included)",
            f"{len(ok) / result.seconds:,.0f} (goal: at least 1,500 on the H100 machine)",
        )
        sizes = [p.stat().st_size for p in heatmaps.glob("*.png")]
        if sizes:
            line("  heatmap files", f"largest {max(sizes) / 1024:.1f} KB (goal: under 30 KB)")


@dataclass
class Run:
    seconds: float
    stdout: str
    error: str | None
    peak_anon_mb: float | None


def run_cli(args: list[str], watch_memory: bool = False) -> Run:
    """A CLI in a fresh interpreter, timed, with the peak of the anonymous memory (RssAnon:
    mapped file pages excluded) of its process tree sampled every 50 ms."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603 (this interpreter, our own modules)
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = [0.0]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], tree_anon_mb(proc.pid))

    watcher = threading.Thread(target=watch, daemon=True)
    if watch_memory:
        watcher.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    error = None
    if proc.returncode != 0:
        tail = [x for x in stderr.strip().splitlines() if x.strip()][-1:] or ["no message"]
        error = f"not measured: exit {proc.returncode}: {tail[0][:200]}"
    return Run(seconds, stdout, error, peak[0] or None)


def tree_anon_mb(pid: int) -> float:
    total = 0.0
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for row in status.splitlines():
            if row.startswith("RssAnon:"):
                total += int(row.split()[1]) / 1024
        pending += [int(c) for c in children]
    return total


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


SECTIONS = ("matmul", "forward", "step", "block", "gradcam", "compile", "train", "predict")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--skip", default="", help=f"comma-separated sections: {','.join(SECTIONS)}"
    )
    parser.add_argument("--compile", action="store_true", help="compiled figures on the CPU too")
    parser.add_argument("--budget", type=int, default=270, help="seconds; compiling stops short")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    if CUDA:
        torch.backends.cudnn.benchmark = True
        device = torch.cuda.get_device_name()
    else:
        device = f"CPU, {torch.get_num_threads()} threads (no GPU: smaller sizes, fp32)"
    sizes = GPU_SIZES if CUDA else CPU_SIZES
    print(
        f"bench/gpu.py on {device}; batch {sizes.batch}, {sizes.size} px, channels-last, "
        f"{'bf16 autocast' if CUDA else 'fp32'}; fused CA "
        f"{'on' if fused_ca.usable(torch.empty(1, 1, 1, 1, device=DEVICE)) else 'off'}",
        flush=True,
    )
    bench = Bench(sizes, args)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        model_dir = None
        for section in SECTIONS:
            if section in skip:
                continue
            print(f"{section}:", flush=True)
            started = time.monotonic()
            try:
                if section == "train":
                    model_dir = bench.train(Path(tmp))
                elif section == "predict":
                    bench.predict(Path(tmp), model_dir)
                else:
                    getattr(bench, section)()
            except Exception as exc:  # noqa: BLE001 (one figure failing leaves the others)
                line(section, why(exc))
            line("(section seconds)", f"{time.monotonic() - started:.0f}")
    print(f"total {time.monotonic() - STARTED:.0f} s")


if __name__ == "__main__":
    main()
