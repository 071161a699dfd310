"""Streaming training data: every image preprocessed once into an on-disk cache of integers, read
back by memory map, so that memory does not grow with the dataset (128,000 images at 512 px are
67 GB as float16 in RAM, 67 GB of uint16 on disk that the page cache holds as it can).

A cache is a folder `inputs-<size>-<dtype>-<key>/` holding `pixels.npy` (N x S x S, the
preprocessed image on the 0-1 scale times 65,535 or 255) and `meta.json`. The key hashes the
preprocessing version, the size, the dtype and every file's path, size and mtime, so a changed
input size, file or preprocessing builds a new cache. It is built in `<name>.partial/` with a
`done.npy` flag per row, so an interrupted build resumes where it stopped, and renamed into place
when complete; a lock file lets only one process (of several training ranks, or machines sharing
the folder) build it while the others wait. Normalisation happens on the training device.
"""

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from inference_worker.preprocess import MEAN, STD, preprocess_file

# Bump when preprocess.py changes what it makes of a file: old caches are then never reused.
PREPROCESSING_VERSION = 1
PIXELS, DONE, META = "pixels.npy", "done.npy", "meta.json"
DTYPES = {"uint16": (np.uint16, 65535), "uint8": (np.uint8, 255)}
CHUNK = 32  # rows per job: large enough to amortise a job, small enough to resume finely
FLUSH_SECONDS = 10.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cache_key(paths: Sequence[Path], size: int, dtype: str) -> str:
    """Hash of what the cache's contents depend on (a file that changes changes the key)."""
    digest = hashlib.sha256(json.dumps([PREPROCESSING_VERSION, size, dtype]).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def quantise(path: str | Path, size: int, dtype: str = "uint16") -> np.ndarray:
    """One file preprocessed exactly as for prediction, on the 0-1 scale, as integers: S x S."""
    np_dtype, scale = DTYPES[dtype]
    tensor, _geometry, _sex = preprocess_file(path, size)
    unit = (tensor[0].numpy() * STD + MEAN).clip(0.0, 1.0)  # undo the normalisation exactly
    return np.rint(unit * scale).astype(np_dtype)


def build_cache(
    paths: Sequence[Path],
    size: int,
    cache_dir: Path,
    *,
    workers: int = 1,
    dtype: str = "uint16",
    progress: bool = True,
) -> Path:
    """The cache folder for these files at this size, built (or its build resumed) if needed."""
    folder = cache_dir / f"inputs-{size}-{dtype}-{cache_key(paths, size, dtype)}"
    if (folder / META).exists():
        return folder
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f".{folder.name}.lock"):
        if (folder / META).exists():  # another rank built it while this one waited
            return folder
        partial = cache_dir / f"{folder.name}.partial"
        pixels, done = _open_partial(partial, len(paths), size, dtype)
        todo = np.flatnonzero(done == 0)
        jobs = [
            (todo[i : i + CHUNK].tolist(), [str(paths[j]) for j in todo[i : i + CHUNK]])
            for i in range(0, len(todo), CHUNK)
        ]
        with tqdm(
            total=len(paths),
            initial=len(paths) - len(todo),
            desc="preprocess",
            unit="img",
            file=sys.stderr,
            disable=not progress,
        ) as bar:
            flushed = time.monotonic()
            for rows in _fill(jobs, partial / PIXELS, pixels, size, dtype, workers):
                done[rows] = 1
                bar.update(len(rows))
                if time.monotonic() - flushed > FLUSH_SECONDS:  # pixels on disk before flags
                    pixels.flush()
                    done.flush()
                    flushed = time.monotonic()
        pixels.flush()
        done.flush()
        del pixels, done
        meta = {
            "version": PREPROCESSING_VERSION,
            "size": size,
            "count": len(paths),
            "dtype": dtype,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        (partial / DONE).unlink()
        (partial / META).write_text(json.dumps(meta))
        partial.replace(folder)
    return folder


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _open_partial(partial: Path, count: int, size: int, dtype: str) -> tuple[np.memmap, np.memmap]:
    """The pixels and per-row done flags of an interrupted build, or new ones."""
    np_dtype, _ = DTYPES[dtype]
    if partial.exists():
        try:
            pixels = np.load(partial / PIXELS, mmap_mode="r+")
            done = np.load(partial / DONE, mmap_mode="r+")
            if pixels.shape == (count, size, size) and done.shape == (count,):
                return pixels, done
        except (OSError, ValueError):
            pass
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    open_memmap = np.lib.format.open_memmap
    pixels = open_memmap(partial / PIXELS, mode="w+", dtype=np_dtype, shape=(count, size, size))
    pixels.flush()  # header and length on disk before the flags say anything
    done = open_memmap(partial / DONE, mode="w+", dtype=np.uint8, shape=(count,))
    return pixels, done


def _fill(
    jobs: list[tuple[list[int], list[str]]],
    pixels_path: Path,
    pixels: np.memmap,
    size: int,
    dtype: str,
    workers: int,
) -> Iterator[list[int]]:
    """Preprocess each job's files into their rows, yielding the rows done, in any order."""
    if workers <= 1 or len(jobs) <= 1:
        for rows, files in jobs:
            yield _write_rows(pixels, rows, files, size, dtype)
        return
    # Each worker runs torch on one thread (set in its initializer): N processes each running
    # torch with N threads is what made the old preprocessing crawl on 16 cores. Forked from a
    # fork server that imported this module once: no re-import of torch per worker, and no
    # copy of a caller's threads or broker connections (kombu's after-fork hook would read
    # from the parent's Redis socket in every child and hang). Workers write
    # their rows into the shared file themselves, so no image crosses a pipe and the parent's
    # memory stays flat.
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=_clean_processes(),
        initializer=_init_worker,
        initargs=(str(pixels_path),),
    ) as pool:
        pending = set()
        for job in jobs:  # a bounded window of jobs in flight, not every future at once
            pending.add(pool.submit(_worker_fill, job, size, dtype))
            if len(pending) >= 4 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        for future in pending:
            yield future.result()


_WORKER_PIXELS: np.memmap | None = None


def _clean_processes() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _init_worker(pixels_path: str) -> None:
    global _WORKER_PIXELS
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))  # for libraries that start later
    torch.set_num_threads(1)  # torch's OpenMP and MKL pools: at most one thread per process
    _WORKER_PIXELS = np.load(pixels_path, mmap_mode="r+")


def _worker_fill(job: tuple[list[int], list[str]], size: int, dtype: str) -> list[int]:
    assert _WORKER_PIXELS is not None  # noqa: S101 (set by the initializer)
    return _write_rows(_WORKER_PIXELS, job[0], job[1], size, dtype)


def _write_rows(
    pixels: np.memmap, rows: list[int], files: list[str], size: int, dtype: str
) -> list[int]:
    for row, path in zip(rows, files, strict=True):
        try:
            pixels[row] = quantise(path, size, dtype)
        except Exception as exc:
            raise RuntimeError(f"cannot preprocess {path}: {exc}") from exc
    return rows


def read_meta(folder: Path) -> dict:
    return json.loads((folder / META).read_text())


class Batch(NamedTuple):
    """What the loader yields: cache rows as stored (uint8, or uint16 viewed as int16 because
    torch converts few ops on uint16), targets, sex encodings, and which dataset items they are."""

    items: Tensor
    pixels: Tensor
    targets: Tensor
    sexes: Tensor


class CachedImages(Dataset):
    """Selected rows of a cache with their targets. The memory map is opened lazily in whichever
    process reads (the main one or a DataLoader worker), never pickled."""

    def __init__(self, folder: Path, rows: Sequence[int], targets: Tensor, sexes: Tensor) -> None:
        self.folder = folder
        self.rows = np.asarray(rows, dtype=np.int64)
        self.targets = targets
        self.sexes = sexes
        self.dtype = read_meta(folder)["dtype"]
        self._pixels: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None}

    def __getitems__(self, items: list[int]) -> Batch:
        """One batch in one read of the map (the DataLoader calls this with a batch's items)."""
        if self._pixels is None:
            self._pixels = np.load(self.folder / PIXELS, mmap_mode="r")
        index = torch.as_tensor(items, dtype=torch.int64)
        array = self._pixels[self.rows[index.numpy()]]
        if array.dtype == np.uint16:
            array = array.view(np.int16)
        return Batch(index, torch.from_numpy(array), self.targets[index], self.sexes[index])

    def __getitem__(self, item: int) -> Batch:
        return self.__getitems__([item])


def collate(batch: Batch) -> Batch:
    """`__getitems__` already returns a whole batch."""
    return batch


def to_input(pixels: Tensor, device: torch.device, dtype: str = "uint16") -> Tensor:
    """Cache rows to the model's normalised input, N x 1 x S x S float32, on `device`."""
    _, scale = DTYPES[dtype]
    x = pixels.to(device, non_blocking=True)
    if dtype == "uint16":
        x = x.int().bitwise_and_(0xFFFF)  # the int16 view back to 0..65535
    unit = x.float().unsqueeze(1) * (1.0 / scale)
    return (unit - MEAN) / STD
