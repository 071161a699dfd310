"""Predict ages (and heatmaps) for DICOM files with a checkpoint folder.

    python -m inference_worker.predict FILE [FILE ...] --model DIR [--heatmaps DIR] [--json]
        [--batch-size N] [--workers N] [--compile]

With --json, one JSON object per file and line: `{"file", "age_days", "sex", "heatmap",
"heatmap_blank", "model", "ms": {"load", "preprocess", "predict", "heatmap", "encode"}}`, or
`{"file", "error", "unreadable"}` for a file that failed (`heatmap_blank`: the map is zero
everywhere, see `heatmap.is_blank`; null without a heatmap). The pipeline has named stages and
records each stage's milliseconds per image; the network is loaded once per process and cached.

One pipeline serves the CLI and the Celery worker (`run_batch`): decoding and preprocessing run
ahead of the model in worker processes (CLI: a DataLoader, its tensors in shared memory) or
threads (a Celery prefork child cannot start processes; pydicom's codecs, numpy and torch release
the GIL), batches of `gpu_batch` images go to the device from pinned memory while the previous
batch computes, and a writer thread encodes and writes the heatmaps. Whatever fails becomes that
image's error: a failed batch is retried one image at a time, so one bad image costs only itself.
"""

import argparse
import functools
import hashlib
import json
import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from inference_worker import checkpoint, recalibration
from inference_worker.ages import days_to_years_months
from inference_worker.decoding import Item, decoded_chunks
from inference_worker.heatmap import SCALE, compact_heats, is_blank, png_bytes, predict_with_cam
from inference_worker.model import ResNet, sex_tensor
from inference_worker.preprocess import describe

STAGES = ("load", "preprocess", "predict", "heatmap", "encode")


def _default_decode_workers() -> int:
    return min(16, os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    """How the pipeline runs. `from_env` reads the worker's settings: INFERENCE_GPU_BATCH (images
    per forward pass), INFERENCE_DECODE_WORKERS (decoders running ahead of the model; 0: decode
    in line) and INFERENCE_COMPILE=1 (torch.compile the backbone)."""

    gpu_batch: int = 32
    decode_workers: int = 0
    processes: bool = False  # decoders are processes (CLI) or threads (Celery worker)
    compile: bool = False

    @classmethod
    def from_env(cls, *, processes: bool = False) -> "Settings":
        env = os.environ
        return cls(
            gpu_batch=max(1, int(env.get("INFERENCE_GPU_BATCH", 32))),
            decode_workers=max(
                0, int(env.get("INFERENCE_DECODE_WORKERS", _default_decode_workers()))
            ),
            processes=processes,
            compile=env.get("INFERENCE_COMPILE", "0") == "1",
        )


@dataclass
class Result:
    file: str
    age_days: int | None = None
    sex: str | None = None
    heatmap: str | None = None
    heatmap_sha256: str | None = None
    heatmap_blank: bool | None = None  # `heatmap.is_blank` of the written map
    error: str | None = None
    unreadable: bool = False
    ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self, model: str) -> dict:
        if self.error:
            return {"file": self.file, "error": self.error, "unreadable": self.unreadable}
        return {
            "file": self.file,
            "age_days": self.age_days,
            "sex": self.sex,
            "heatmap": self.heatmap,
            "heatmap_blank": self.heatmap_blank,
            "model": model,
            "ms": {k: round(v, 3) for k, v in self.ms.items()},
        }


class Predictor:
    """A loaded model and its card; prediction and heatmap in one pass per batch."""

    def __init__(
        self, model: ResNet, card: dict, device: torch.device, *, compile: bool = False
    ) -> None:
        self.model, self.card, self.device = model, card, device
        self.size = int(card["input_size"])
        norm = card["normalisation"]
        self.age_mean, self.age_std = float(norm["age_mean_days"]), float(norm["age_std_days"])
        # Site recalibrations fitted on curated cases (`recalibration`): each to its site's ages.
        self.recalibration = card.get("recalibration") or []
        # channels-last suits oneDNN on CPUs as well as tensor cores on GPUs.
        self.model = self.model.to(memory_format=torch.channels_last)
        # Only the backbone is compiled: the head runs in fp32 with its own small backward.
        self.backbone = torch.compile(self.model.forward_features) if compile else None

    @property
    def name(self) -> str:
        return str(self.card.get("name", "model"))

    def run(
        self,
        files: list[str],
        *,
        heatmap_paths: list[str | None] | None = None,
        sexes: list[str | None] | None = None,
        sites: list[str | None] | None = None,
        batch_size: int | None = None,
        settings: Settings | None = None,
    ) -> list[Result]:
        """One Result per file, in order. `heatmap_paths[i]` is where to write file i's PNG
        (None: no heatmap); `sexes[i]` overrides the file's PatientSex; `sites[i]` is the
        file's site, for a recalibration fitted on one site; `batch_size` overrides the
        settings' GPU batch. Never raises for a file, a batch or a heatmap that fails."""
        settings = settings or Settings()
        if batch_size:
            settings = replace(settings, gpu_batch=batch_size)
        return _Run(
            self,
            files,
            heatmap_paths or [None] * len(files),
            sexes or [None] * len(files),
            sites or [None] * len(files),
            settings,
        ).execute()


@dataclass
class _Launched:
    """A batch whose work is queued on the device; its results are read in `_complete`."""

    items: list[Item]
    age: torch.Tensor
    heats: list[torch.Tensor]  # compact uint8 maps of the items that want one (`wanted`)
    wanted: list[int]
    marks: list


class _Run:
    """One call of `Predictor.run`: decode ahead, launch batch k+1 before reading batch k's
    results (the device never waits for the host), write heatmaps behind."""

    def __init__(self, predictor: Predictor, files, heatmap_paths, sexes, sites, settings) -> None:
        self.p, self.files, self.paths, self.sexes = predictor, files, heatmap_paths, sexes
        self.sites = sites
        self.settings = settings
        self.results = [Result(file=f) for f in files]
        self.cuda = predictor.device.type == "cuda"
        self.pinned: list[torch.Tensor | None] = [None, None]
        self.launches = 0
        self.writer = (
            # Two: zlib releases the GIL, and one writer could lag a fast GPU.
            ThreadPoolExecutor(2, thread_name_prefix="heatmap-writer")
            if settings.decode_workers
            else None
        )
        self.writes: deque[Future] = deque()
        self.folders: set[Path] = set()

    def execute(self) -> list[Result]:
        launched: _Launched | None = None
        try:
            for chunk in decoded_chunks(
                self.files,
                self.sexes,
                self.p.size,
                gpu_batch=self.settings.gpu_batch,
                workers=self.settings.decode_workers,
                processes=self.settings.processes,
            ):
                items = self._accept(chunk)
                following = self._launch(items) if items else None
                if launched:
                    self._finish(launched)
                launched = following
            if launched:
                self._finish(launched)
                launched = None
        except Exception as exc:  # the decoders themselves broke: answer for every image
            if launched:
                self._finish(launched)
            reason = f"the worker failed: {describe(exc)}"
            for i, r in enumerate(self.results):
                if r.error is None and r.age_days is None:
                    self._fail(i, reason)
        finally:
            while self.writes:
                self.writes.popleft().result()
            if self.writer:
                self.writer.shutdown()
        return self.results

    def _accept(self, chunk: list[Item]) -> list[Item]:
        """Record decoding failures and timings; the rest form the GPU batch."""
        items = []
        for i, decoded in chunk:
            r = self.results[i]
            r.ms = {stage: 0.0 for stage in STAGES} | decoded.ms
            if decoded.error:
                r.error, r.unreadable = decoded.error, decoded.unreadable
            else:
                r.sex = decoded.sex
                items.append((i, decoded))
        return items

    def _fail(self, i: int, reason: str, unreadable: bool = False) -> None:
        r = self.results[i]
        r.error, r.unreadable, r.age_days = reason, unreadable, None
        r.heatmap = r.heatmap_sha256 = r.heatmap_blank = None

    def _launch(self, items: list[Item]) -> _Launched | None:
        try:
            return self._device(items, pinned=self.cuda)
        except Exception as exc:
            self._one_by_one(items, exc)
            return None

    def _finish(self, launched: _Launched) -> None:
        try:
            self._complete(launched)
        except Exception as exc:
            self._one_by_one(launched.items, exc)

    def _one_by_one(self, items: list[Item], exc: Exception) -> None:
        """A batch failed (out of memory, say): each image alone, so one bad image fails alone."""
        if len(items) == 1:
            self._fail(items[0][0], f"prediction failed: {describe(exc)}")
            return
        if self.cuda:
            torch.cuda.empty_cache()
        for item in items:
            try:
                # Pageable memory: a pinned buffer may still feed the batch in flight.
                self._complete(self._device([item], pinned=False))
            except Exception as single:
                self._fail(item[0], f"prediction failed: {describe(single)}")

    def _to_device(self, tensors: list[torch.Tensor], pinned: bool) -> torch.Tensor:
        if not pinned:
            return torch.stack(tensors).to(self.p.device)
        # Two pinned buffers in turn: batch k+1 is filled while batch k's copy may be queued.
        slot = self.launches % 2
        self.launches += 1
        n, shape = len(tensors), tensors[0].shape
        buffer = self.pinned[slot]
        if buffer is None or buffer.shape[0] < n or buffer.shape[1:] != shape:
            size = max(n, self.settings.gpu_batch)
            buffer = torch.empty((size, *shape), dtype=tensors[0].dtype, pin_memory=True)
            self.pinned[slot] = buffer
        torch.stack(tensors, out=buffer[:n])
        return buffer[:n].to(self.p.device, non_blocking=True)

    def _mark(self) -> object:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _device(self, items: list[Item], *, pinned: bool) -> _Launched:
        """Queue forward, Grad-CAM and the compact heatmaps of one batch; no host sync."""
        p = self.p
        decoded = [d for _, d in items]
        x = self._to_device([d.tensor for d in decoded], pinned)
        x = x.contiguous(memory_format=torch.channels_last)
        sex = sex_tensor([d.sex for d in decoded], p.device)
        marks = [self._mark()]
        # bf16 autocast for the backbone on a GPU; predict_with_cam keeps the head in fp32.
        with torch.autocast(p.device.type, dtype=torch.bfloat16, enabled=self.cuda):
            output = predict_with_cam(p.model, x, sex, backbone=p.backbone)
        marks.append(self._mark())
        wanted = [k for k, (i, _) in enumerate(items) if self.paths[i]]
        heats = []
        if wanted:
            cams = output.cam
            if len(wanted) < len(items):
                cams = torch.stack([cams[k] for k in wanted])
            heats = compact_heats(cams, [decoded[k].geometry for k in wanted])
        marks.append(self._mark())
        return _Launched(items, output.age, heats, wanted, marks)

    def _complete(self, launched: _Launched) -> None:
        """Wait for a launched batch, record ages and stage times, hand heatmaps to the writer."""
        p = self.p
        ages = (launched.age.float().cpu().numpy() * p.age_std + p.age_mean).clip(0, None)
        sites = [self.sites[i] for i, _ in launched.items]
        ages = recalibration.apply(p.recalibration, ages, sites)
        start = time.perf_counter()
        heats = [h.cpu().numpy() for h in launched.heats]
        copy_ms = (time.perf_counter() - start) * 1000
        a, b, c = launched.marks
        if self.cuda:
            predict_ms, heat_ms = a.elapsed_time(b), b.elapsed_time(c) + copy_ms
        else:
            predict_ms, heat_ms = (b - a) * 1000, (c - b) * 1000 + copy_ms
        n = len(launched.items)
        for (i, _), age in zip(launched.items, ages, strict=True):
            r = self.results[i]
            r.age_days = int(round(float(age)))
            r.ms["predict"] = predict_ms / n
        for k, heat in zip(launched.wanted, heats, strict=True):
            i = launched.items[k][0]
            self.results[i].ms["heatmap"] = heat_ms / len(heats)
            self._write(i, heat)

    def _write(self, i: int, heat: np.ndarray) -> None:
        if self.writer is None:
            self._encode(i, heat)
            return
        # Bounded: the writer may fall behind, memory may not grow with the run.
        while len(self.writes) > 4 * self.settings.gpu_batch:
            self.writes.popleft().result()
        self.writes.append(self.writer.submit(self._encode, i, heat))

    def _encode(self, i: int, heat: np.ndarray) -> None:
        """PNG, written atomically (`.name.tmp`, then renamed), and its sha256 for the portal's
        `verify_storage`. A full disk fails this image, not the run."""
        start = time.perf_counter()
        path = Path(self.paths[i])
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            png = png_bytes(heat)
            if path.parent not in self.folders:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.folders.add(path.parent)
            tmp.write_bytes(png)
            tmp.replace(path)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            self._fail(i, f"the heatmap cannot be written: {describe(exc)}")
            return
        r = self.results[i]
        r.heatmap, r.heatmap_sha256 = str(path), hashlib.sha256(png).hexdigest()
        r.heatmap_blank = is_blank(heat)
        r.ms["encode"] = (time.perf_counter() - start) * 1000


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=4)
def load_predictor(model_dir: str, sha256: str | None = None, compile: bool = False) -> Predictor:
    """Loaded once per process and model; `sha256`, when given, must match the card."""
    model, card = checkpoint.load(Path(model_dir), default_device())
    if sha256 and card["sha256"] != sha256:
        raise checkpoint.CheckpointError(
            f"weights sha256 {card['sha256']} is not the expected {sha256}"
        )
    return Predictor(model, card, default_device(), compile=compile)


def failure_answer(payload: dict, reason: str, *, unreadable: bool = False) -> dict:
    """The answer for a batch whose every image failed for one reason."""
    return {
        "job": payload.get("job"),
        "model": payload["model"]["name"],
        "results": [
            {"image": image["id"], "error": reason, "unreadable": unreadable}
            for image in payload["images"]
        ],
    }


def run_batch(payload: dict, data_dir: Path, settings: Settings | None = None) -> dict:
    """A portal batch (`{"job", "model": {"name", "path", "sha256"}, "images": [{"id", "path",
    "sex", "site", "heatmap"}]}`, paths relative to the shared storage) -> the answer for the
    portal: one result per image, an age and a heatmap (with its sha256, its scale and whether it is
    blank), or `{"image", "error", "unreadable"}`. Never raises: whatever fails, the portal
    hears about every image."""
    settings = settings or Settings.from_env()
    model, images = payload["model"], payload["images"]
    try:
        predictor = load_predictor(
            str(data_dir / model["path"]), model["sha256"], compile=settings.compile
        )
    except Exception as exc:
        return failure_answer(payload, f"model {model['name']} cannot be loaded: {describe(exc)}")
    try:
        results = predictor.run(
            [str(data_dir / image["path"]) for image in images],
            heatmap_paths=[str(data_dir / image["heatmap"]) for image in images],
            sexes=[image.get("sex") for image in images],
            sites=[image.get("site") for image in images],
            settings=settings,
        )
    except Exception as exc:  # a bug of ours; the batch still gets its answer
        return failure_answer(payload, f"the worker failed: {describe(exc)}")
    answer: dict = {"job": payload.get("job"), "model": model["name"], "results": []}
    for image, result in zip(images, results, strict=True):
        if result.error:
            answer["results"].append(
                {"image": image["id"], "error": result.error, "unreadable": result.unreadable}
            )
        else:
            answer["results"].append(
                {
                    "image": image["id"],
                    "age_days": result.age_days,
                    "heatmap": image["heatmap"],
                    "heatmap_sha256": result.heatmap_sha256,
                    "heatmap_scale": SCALE,
                    "heatmap_blank": result.heatmap_blank,
                    "ms": result.ms,
                }
            )
    return answer


def main(argv: list[str] | None = None) -> int:
    env = Settings.from_env(processes=True)
    parser = argparse.ArgumentParser(description="Predict pediatric age from chest X-rays.")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--model", required=True, type=Path, help="checkpoint folder")
    parser.add_argument("--heatmaps", type=Path, help="folder for heatmap PNGs")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--batch-size", type=int, default=env.gpu_batch, help="images per forward pass"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=env.decode_workers,
        help="decoding processes running ahead of the model (0: decode in this process)",
    )
    parser.add_argument("--compile", action="store_true", default=env.compile)
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    settings = Settings(
        gpu_batch=max(1, args.batch_size),
        decode_workers=max(0, args.workers),
        processes=True,
        compile=args.compile,
    )
    try:
        predictor = load_predictor(str(args.model), compile=settings.compile)
    except checkpoint.CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = [
        str(args.heatmaps / f"{Path(f).stem}.png") if args.heatmaps else None for f in args.files
    ]
    failed = 0
    for result in predictor.run(args.files, heatmap_paths=paths, settings=settings):
        failed += bool(result.error)
        if args.json:
            print(json.dumps(result.as_dict(predictor.name)), flush=True)
        elif result.error:
            print(f"{result.file}: {result.error}", file=sys.stderr)
        else:
            years, months = days_to_years_months(result.age_days)
            print(
                f"{result.file}: {result.age_days} days ({years} y {months} m)"
                + (f", heatmap {result.heatmap}" if result.heatmap else "")
                + (" (blank: the model's gradient is zero)" if result.heatmap_blank else "")
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
