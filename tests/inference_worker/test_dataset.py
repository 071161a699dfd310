"""The streaming training data: a memory-mapped cache of integers that gives the model the same
inputs as `preprocess_file`, resumes an interrupted build, and keeps memory flat."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_worker.dataset import (
    DONE,
    META,
    PIXELS,
    CachedImages,
    _open_partial,
    build_cache,
    to_input,
)
from inference_worker.preprocess import STD, preprocess_file
from inference_worker.synthetic import generate
from inference_worker.train import _loader, augment
from tests.dicom_files import make_dicom

SIZE = 48
# Half a step of 65,535 on the 0-1 scale, after normalisation: what uint16 storage may round.
UINT16_TOLERANCE = 0.5 / 65535 / STD + 1e-6


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("phantoms")
    generate(folder, 8, seed=4, profile="south")  # MONOCHROME1, compressed: every code path
    return sorted(folder.glob("*.dcm"))


def _dataset(folder: Path, count: int) -> CachedImages:
    return CachedImages(folder, range(count), torch.arange(count).float(), torch.zeros(count, 2))


def test_streaming_dataset_gives_the_tensors_preprocess_file_gives(phantoms, tmp_path):
    folder = build_cache(phantoms, SIZE, tmp_path, workers=2, progress=False)
    loader = _loader(_dataset(folder, len(phantoms)), 3, 2, torch.device("cpu"))
    seen = []
    for batch in loader:
        x = to_input(batch.pixels, torch.device("cpu"))
        assert x.shape == (len(batch.items), 1, SIZE, SIZE)
        assert x.dtype == torch.float32
        for item, tensor in zip(batch.items.tolist(), x, strict=True):
            expected = preprocess_file(phantoms[item], SIZE)[0]
            assert (tensor - expected).abs().max().item() <= UINT16_TOLERANCE
            seen.append(item)
    assert seen == list(range(len(phantoms)))


def test_cache_stores_integers_on_disk_not_floats(phantoms, tmp_path):
    folder = build_cache(phantoms, SIZE, tmp_path, progress=False)
    pixels = np.load(folder / PIXELS, mmap_mode="r")
    assert isinstance(pixels, np.memmap)
    assert pixels.dtype == np.uint16
    assert pixels.shape == (len(phantoms), SIZE, SIZE)
    eight_bit = build_cache(phantoms, SIZE, tmp_path, dtype="uint8", progress=False)
    assert np.load(eight_bit / PIXELS, mmap_mode="r").dtype == np.uint8
    x = to_input(_dataset(eight_bit, 1)[0].pixels, torch.device("cpu"), "uint8")
    assert (x[0] - preprocess_file(phantoms[0], SIZE)[0]).abs().max() <= 0.5 / 255 / STD + 1e-6


def test_a_changed_input_size_builds_a_new_cache_and_an_unchanged_one_reuses_it(phantoms, tmp_path):
    first = build_cache(phantoms, SIZE, tmp_path, progress=False)
    written = (first / META).stat().st_mtime_ns
    assert build_cache(phantoms, SIZE, tmp_path, progress=False) == first
    assert (first / META).stat().st_mtime_ns == written
    other = build_cache(phantoms, 32, tmp_path, progress=False)
    assert other != first
    assert np.load(other / PIXELS, mmap_mode="r").shape == (len(phantoms), 32, 32)


def test_an_interrupted_build_resumes_with_the_rows_it_had_done(phantoms, tmp_path):
    complete = build_cache(phantoms, SIZE, tmp_path / "a", progress=False)
    partial = tmp_path / "b" / f"{complete.name}.partial"
    pixels, done = _open_partial(partial, len(phantoms), SIZE, "uint16")
    pixels[:3] = 7  # rows an earlier run had written (a marker, to see that they are kept)
    done[:3] = 1
    pixels.flush()
    done.flush()
    del pixels, done
    folder = build_cache(phantoms, SIZE, tmp_path / "b", progress=False)
    assert folder.name == complete.name
    assert not partial.exists()
    assert not (folder / DONE).exists()
    resumed = np.load(folder / PIXELS)
    assert (resumed[:3] == 7).all()
    np.testing.assert_array_equal(resumed[3:], np.load(complete / PIXELS)[3:])


def test_a_file_that_cannot_be_read_stops_the_build_naming_it(phantoms, tmp_path):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a dicom file")
    with pytest.raises(RuntimeError, match="broken.dcm"):
        build_cache([*phantoms[:2], broken], SIZE, tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").glob("inputs-*[0-9a-f]"))  # no complete cache


@pytest.mark.slow  # starts preprocessing processes after torch ran on threads
def test_preprocessing_processes_finish_after_the_parent_ran_torch_on_several_threads(
    phantoms, tmp_path
):
    """Forked workers of a parent whose OpenMP pool has run can hang in their first parallel
    torch call (without one thread per worker this hangs here, as the old preprocessing did)."""
    script = textwrap.dedent(
        """
        import json, sys, torch
        from pathlib import Path
        from inference_worker.dataset import build_cache
        torch.set_num_threads(2)
        files = [Path(f) for f in json.loads(sys.argv[1])] * 30  # enough to hang, without
        build_cache(files, 128, Path(sys.argv[2]), workers=1, progress=False)  # in this process
        print(build_cache(files, 96, Path(sys.argv[2]), workers=2, progress=False))
        """
    )
    files = json.dumps([str(p) for p in phantoms])
    result = subprocess.run(
        [sys.executable, "-c", script, files, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / META).exists()


def test_augmentation_keeps_shape_and_scale_on_the_cpu(phantoms):
    x = torch.stack([preprocess_file(p, SIZE)[0] for p in phantoms])
    out = augment(x, hflip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert abs(out.mean().item() - x.mean().item()) < 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cache_rows_become_the_same_input_on_the_gpu_and_augment_there(phantoms, tmp_path):
    folder = build_cache(phantoms, SIZE, tmp_path, progress=False)
    pixels = _dataset(folder, len(phantoms)).__getitems__(list(range(len(phantoms)))).pixels
    cpu = to_input(pixels, torch.device("cpu"))
    cuda = to_input(pixels.pin_memory(), torch.device("cuda"))
    assert cuda.is_cuda
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-6)
    out = augment(cuda, hflip=False, generator=torch.Generator("cuda").manual_seed(0))
    assert out.is_cuda
    assert out.shape == cpu.shape


MEASURE = textwrap.dedent(
    """
    import json, sys, threading, time
    from pathlib import Path
    import torch
    from torch.utils.data import DataLoader
    from inference_worker.dataset import CachedImages, build_cache, collate, to_input
    from inference_worker.train import augment

    def anonymous_kb():  # resident anonymous memory: mapped file pages are not in it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])

    peak, running = [anonymous_kb()], True
    def watch():
        while running:
            peak[0] = max(peak[0], anonymous_kb())
            time.sleep(0.002)
    threading.Thread(target=watch, daemon=True).start()
    torch.set_num_threads(1)
    files, size, cache = json.loads(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    folder = build_cache([Path(f) for f in files], size, cache, workers=1, progress=False)
    n = len(files)
    data = CachedImages(folder, range(n), torch.zeros(n), torch.zeros(n, 2))
    loader = DataLoader(data, batch_size=16, shuffle=True, collate_fn=collate)
    generator = torch.Generator().manual_seed(0)
    for _epoch in range(2):
        for batch in loader:
            x = augment(to_input(batch.pixels, torch.device("cpu")), hflip=False,
                        generator=generator)
    running = False
    peak[0] = max(peak[0], anonymous_kb())
    print(json.dumps({"peak_anonymous_kb": peak[0]}))
    """
)


@pytest.mark.slow
def test_peak_anonymous_memory_does_not_grow_with_the_dataset(tmp_path):
    """Two epochs of the training data path (cache build, loader, augmentation) over 200 and
    1,200 images of 256 px: the larger cache is 131 MB bigger; the anonymous memory is not."""
    source = make_dicom(tmp_path / "source.dcm", rows=96, cols=80)
    size, peaks = 256, {}
    for count in (200, 1200):
        folder = tmp_path / f"n{count}"
        folder.mkdir()
        files = [str(shutil.copy(source, folder / f"{i}.dcm")) for i in range(count)]
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, json.dumps(files), str(size), str(folder / "cache")],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        peaks[count] = json.loads(result.stdout)["peak_anonymous_kb"]
    dataset_growth_kb = (1200 - 200) * size * size * 2 // 1024
    # Holding the images in memory (the old path) grows it by the whole 131 MB; run to run, the
    # peak varies by up to about 25 MB here (allocator, sampling), hence a third of the growth.
    assert peaks[1200] - peaks[200] < dataset_growth_kb // 3, (peaks, dataset_growth_kb)
