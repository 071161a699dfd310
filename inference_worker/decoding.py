"""Decoding ahead of the model: each GPU batch's files read and preprocessed in line, by threads
(the Celery worker, whose prefork children cannot start processes; pydicom's codecs, numpy and
torch release the GIL) or by DataLoader worker processes (the CLI), one thread per decoder.
"""

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch.utils.data import DataLoader, Dataset

from inference_worker.preprocess import Decoded, decode_file

Item = tuple[int, Decoded]  # a file's index in the run and what decoding it gave
# Files per decode task in a worker process: one shared-memory tensor per piece, not per image.
DECODE_PIECE = 8


def decoded_chunks(
    files: list[str],
    sexes: list[str | None],
    size: int,
    *,
    gpu_batch: int,
    workers: int,
    processes: bool,
) -> Iterator[list[Item]]:
    """Each GPU batch's files decoded, in order: in line (`workers` 0), by threads or by
    processes. A batch holds the same files whichever way it was decoded."""
    n = len(files)
    chunks = [list(range(start, min(start + gpu_batch, n))) for start in range(0, n, gpu_batch)]
    if workers <= 0:
        for chunk in chunks:
            yield [(i, decode_file(files[i], size, sexes[i])) for i in chunk]
    elif processes and len(chunks) > 1:
        # One batch has nothing to overlap with: threads decode it without starting processes.
        yield from _process_chunks(files, sexes, size, chunks, workers)
    else:
        yield from _thread_chunks(files, sexes, size, chunks, workers)


def _single_threaded() -> None:
    torch.set_num_threads(1)  # one decoder, one core: no decoder runs an OpenMP team


def _thread_chunks(files, sexes, size, chunks, workers: int) -> Iterator[list[Item]]:
    order = iter([i for chunk in chunks for i in chunk])
    ahead = 2 * max(len(chunks[0]) if chunks else 1, workers)  # images decoded ahead, at most
    pending: deque[tuple[int, Future]] = deque()
    with ThreadPoolExecutor(workers, "decode", initializer=_single_threaded) as pool:

        def top_up() -> None:
            while len(pending) < ahead and (i := next(order, None)) is not None:
                pending.append((i, pool.submit(decode_file, files[i], size, sexes[i])))

        for chunk in chunks:
            top_up()
            out = []
            for _ in chunk:
                i, future = pending.popleft()
                out.append((i, future.result()))
                top_up()
            yield out


class _Pieces(Dataset):
    """Decode tasks for DataLoader workers: a few files each, their tensors stacked into one
    (which the DataLoader hands over in shared memory, not through a pipe)."""

    def __init__(self, files, sexes, size, pieces: list[list[int]]) -> None:
        self.files, self.sexes, self.size, self.pieces = files, sexes, size, pieces

    def __len__(self) -> int:
        return len(self.pieces)

    def __getitem__(self, k: int) -> tuple[list[int], list[Decoded], torch.Tensor | None]:
        members = self.pieces[k]
        decoded = [decode_file(self.files[i], self.size, self.sexes[i]) for i in members]
        tensors = [d.tensor for d in decoded if d.tensor is not None]
        for d in decoded:
            d.tensor = None
        return members, decoded, torch.stack(tensors) if tensors else None


def _as_is(item):
    return item


def _process_chunks(files, sexes, size, chunks, workers: int) -> Iterator[list[Item]]:
    pieces, owner = [], []
    for c, chunk in enumerate(chunks):
        for start in range(0, len(chunk), DECODE_PIECE):
            pieces.append(chunk[start : start + DECODE_PIECE])
            owner.append(c)
    loader = DataLoader(
        _Pieces(files, sexes, size, pieces),
        batch_size=None,
        collate_fn=_as_is,
        num_workers=min(workers, len(pieces)) if pieces else 0,
        # spawn: the parent may hold CUDA, which a forked child cannot use or safely inherit.
        multiprocessing_context="spawn" if pieces else None,
        prefetch_factor=2 if pieces else None,
    )
    out: list[Item] = []
    current = 0
    for k, (members, decoded, stacked) in enumerate(loader):
        if owner[k] != current:
            yield out
            out, current = [], owner[k]
        j = 0
        for i, d in zip(members, decoded, strict=True):
            if d.error is None:
                d.tensor = stacked[j]
                j += 1
            out.append((i, d))
    if out:
        yield out
