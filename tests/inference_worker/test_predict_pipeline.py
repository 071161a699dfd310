"""The predict pipeline: decoders running ahead (threads or processes), batches launched while
the previous one computes, heatmaps written behind; whatever fails becomes that image's error."""

import json
import resource
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
import torch

from inference_worker import checkpoint
from inference_worker.model import build_model, sex_tensor
from inference_worker.predict import STAGES, Predictor, Settings, run_batch
from inference_worker.preprocess import preprocess
from tests.dicom_files import make_dicom

SIZE = 64


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    checkpoint.save(
        folder,
        build_model("ca_resnet18", width=8).eval(),
        {
            "name": "tiny",
            "architecture": "ca_resnet18",
            "width": 8,
            "input_size": SIZE,
            "normalisation": {"age_mean_days": 2000.0, "age_std_days": 1000.0},
        },
    )
    return folder


@pytest.fixture(scope="module")
def predictor(model_dir) -> Predictor:
    model, card = checkpoint.load(model_dir)
    return Predictor(model, card, torch.device("cpu"))


@pytest.fixture(scope="module")
def films(tmp_path_factory) -> list[str]:
    """Eight films of several shapes and sexes, one that is not DICOM, one truncated."""
    folder = tmp_path_factory.mktemp("films")
    shapes = [(96, 80), (80, 96), (120, 100), (96, 80), (64, 64), (150, 110), (96, 80), (70, 90)]
    paths = [
        make_dicom(folder / f"{k}.dcm", rows=r, cols=c, seed=k, sex="MF"[k % 2])
        for k, (r, c) in enumerate(shapes)
    ]
    paths[2].write_bytes(b"not a dicom any more")
    whole = paths[5].read_bytes()
    paths[5].write_bytes(whole[: len(whole) - 5000])
    return [str(p) for p in paths]


def _run(predictor, films, folder: Path, settings: Settings):
    heatmaps = [str(folder / f"{k}.png") for k in range(len(films))]
    return predictor.run(films, heatmap_paths=heatmaps, settings=settings)


def _outcome(results) -> list[tuple]:
    return [
        (
            r.age_days,
            r.sex,
            r.error,
            r.unreadable,
            r.heatmap_sha256,
            Path(r.heatmap).read_bytes() if r.heatmap else None,
        )
        for r in results
    ]


def test_threads_and_processes_give_exactly_the_sequential_results(predictor, films, tmp_path):
    sequential = _run(predictor, films, tmp_path / "seq", Settings(gpu_batch=3))
    threads = _run(predictor, films, tmp_path / "thr", Settings(gpu_batch=3, decode_workers=2))
    processes = _run(
        predictor,
        films,
        tmp_path / "proc",
        Settings(gpu_batch=3, decode_workers=2, processes=True),
    )
    assert _outcome(threads) == _outcome(sequential)
    assert _outcome(processes) == _outcome(sequential)
    assert [r.error is None for r in sequential] == [
        True,
        True,
        False,
        True,
        True,
        False,
        True,
        True,
    ]


def test_ages_equal_one_model_call_on_the_same_batches(predictor, films, tmp_path):
    """Today's path: preprocess each readable file, one forward pass per batch, fp32 head."""
    results = _run(predictor, films, tmp_path, Settings(gpu_batch=3, decode_workers=2))
    readable = [k for k, r in enumerate(results) if r.error is None]
    batches = [films[0:3], films[3:6], films[6:8]]  # the GPU batches, less the failures
    expected = []
    for batch in batches:
        kept = [f for f in batch if films.index(f) in readable]
        datasets = [pydicom.dcmread(f) for f in kept]
        x = torch.stack([preprocess(ds, SIZE)[0] for ds in datasets])
        sex = sex_tensor([str(ds.PatientSex) for ds in datasets])
        model = predictor.model
        with torch.no_grad():
            age = model(x.contiguous(memory_format=torch.channels_last), sex)
        expected += [int(round(float(a) * 1000 + 2000)) for a in age]
    assert [results[k].age_days for k in readable] == expected


def test_each_image_reports_every_stage_in_milliseconds(predictor, films, tmp_path):
    results = _run(predictor, films, tmp_path, Settings(gpu_batch=4, decode_workers=2))
    for r in results:
        if r.error is None:
            assert set(r.ms) == set(STAGES)
            assert all(r.ms[stage] > 0 for stage in STAGES), r.ms


def test_failures_name_the_problem_and_whether_the_file_itself_is_unreadable(
    predictor, films, tmp_path
):
    missing = str(tmp_path / "gone" / "missing.dcm")
    results = _run(predictor, [films[2], films[5], missing], tmp_path, Settings())
    junk, truncated, gone = results
    assert junk.error.startswith("cannot read the file: InvalidDicomError")
    assert truncated.error.startswith("cannot decode the pixel data: ValueError")
    assert (junk.unreadable, truncated.unreadable) == (True, True)
    # A file this machine cannot find may be there again once its storage is: retryable.
    assert (
        gone.error
        == "the image file cannot be opened: FileNotFoundError: No such file or directory"
    )
    assert gone.unreadable is False
    for r in results:
        assert str(tmp_path) not in r.error
        assert "/" not in r.error


def test_a_film_of_several_frames_is_unreadable_not_a_crash(predictor, tmp_path):
    path = make_dicom(tmp_path / "frames.dcm", rows=64, cols=64, frames=3)
    [result] = predictor.run([str(path)])
    assert result.error == (
        "cannot decode the pixel data: ValueError: "
        "pixel data of shape (3, 64, 64), not one grayscale frame"
    )
    assert result.unreadable is True


class _MaxOneImage:
    """The real backbone on a device that holds one image at a time: larger batches fail as
    CUDA's allocator does."""

    def __init__(self, model) -> None:
        self.model, self.batches = model, []

    def __call__(self, x):
        self.batches.append(len(x))
        if len(x) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.model.forward_features(x)


def test_a_batch_that_runs_out_of_memory_is_predicted_one_image_at_a_time(
    model_dir, films, tmp_path
):
    model, card = checkpoint.load(model_dir)
    singles = Predictor(model, card, torch.device("cpu"))
    readable = [films[k] for k in (0, 1, 3, 4)]
    expected = [r.age_days for r in singles.run(readable, batch_size=1)]
    predictor = Predictor(model, card, torch.device("cpu"))
    predictor.backbone = _MaxOneImage(predictor.model)

    results = predictor.run(
        readable,
        heatmap_paths=[str(tmp_path / f"{k}.png") for k in range(4)],
        settings=Settings(gpu_batch=4, decode_workers=2),
    )

    assert [r.age_days for r in results] == expected
    assert all(r.error is None and Path(r.heatmap).exists() for r in results)
    assert predictor.backbone.batches == [4, 1, 1, 1, 1]


def test_an_image_that_breaks_the_forward_pass_fails_alone(model_dir, films, tmp_path):
    model, card = checkpoint.load(model_dir)
    predictor = Predictor(model, card, torch.device("cpu"))
    poison = preprocess(pydicom.dcmread(films[3]), SIZE)[0]

    def backbone(x):
        if any(torch.equal(image, poison) for image in x):
            raise RuntimeError("CUDA error: an illegal memory access at /srv/build/kernel.cu:12")
        return predictor.model.forward_features(x)

    predictor.backbone = backbone
    results = predictor.run(films[:5], settings=Settings(gpu_batch=5, decode_workers=2))

    assert [r.error is None for r in results] == [True, True, False, False, True]
    assert results[3].error == (
        "prediction failed: RuntimeError: CUDA error: an illegal memory access at <path>:12"
    )
    assert results[3].unreadable is False


def _payload(films: list[str], data_dir: Path, model_path: str, sha256: str) -> dict:
    images = []
    for k, film in enumerate(films):
        stored = data_dir / "images" / "site" / f"{k}.dcm"
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(Path(film).read_bytes())
        images.append(
            {
                "id": 100 + k,
                "path": f"images/site/{k}.dcm",
                "sex": None,
                "heatmap": f"heatmaps/tiny/{k}.png",
            }
        )
    return {
        "job": 7,
        "model": {"name": "tiny", "path": model_path, "sha256": sha256},
        "images": images,
    }


def test_run_batch_answers_each_image_of_a_message_larger_than_a_gpu_batch(
    model_dir, films, tmp_path
):
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / "tiny").symlink_to(model_dir)
    sha = checkpoint.read_card(model_dir)["sha256"]
    payload = _payload(films, data, "models/tiny", sha)

    answer = run_batch(payload, data, Settings(gpu_batch=3, decode_workers=2))

    assert [r["image"] for r in answer["results"]] == [100 + k for k in range(len(films))]
    failed = {r["image"]: r for r in answer["results"] if "error" in r}
    assert set(failed) == {102, 105}
    assert all(
        set(r) == {"image", "error", "unreadable"} and r["unreadable"] for r in failed.values()
    )
    for r in answer["results"]:
        if "error" not in r:
            assert (data / r["heatmap"]).exists()
            assert set(r["ms"]) == set(STAGES)
    assert str(tmp_path) not in json.dumps(answer)


def test_a_model_that_cannot_be_loaded_fails_every_image_as_retryable(films, tmp_path):
    data = tmp_path / "data"
    payload = _payload(films[:3], data, "models/absent", "0" * 64)

    answer = run_batch(payload, data, Settings())

    assert [r["image"] for r in answer["results"]] == [100, 101, 102]
    for r in answer["results"]:
        assert r["unreadable"] is False
        assert r["error"].startswith("model tiny cannot be loaded: CheckpointError: <path>")
    assert str(tmp_path) not in json.dumps(answer)


def _small_files() -> None:
    # Writes past 64 bytes fail with EFBIG; the smallest heatmap PNG is longer (69 bytes).
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))


def test_a_heatmap_that_cannot_be_written_fails_its_image_and_leaves_no_temporary_file(
    model_dir, tmp_path
):
    films = [str(make_dicom(tmp_path / f"{k}.dcm", rows=400, cols=300, seed=k)) for k in range(3)]
    heatmaps = tmp_path / "heat"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inference_worker.predict",
            *films,
            "--model",
            str(model_dir),
            "--heatmaps",
            str(heatmaps),
            "--json",
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_small_files,
    )
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {
            "file": f,
            "error": "the heatmap cannot be written: OSError: File too large",
            "unreadable": False,
        }
        for f in films
    ]
    assert list(heatmaps.iterdir()) == []


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_on_a_gpu_the_pipeline_gives_the_cpu_ages_within_a_day(model_dir, films, tmp_path):
    """bf16 backbone, fp32 head: GPU and CPU ages agree (issue 9 saw two weeks apart)."""
    model, card = checkpoint.load(model_dir)
    cpu = Predictor(model, card, torch.device("cpu")).run(films, batch_size=4)
    model, card = checkpoint.load(model_dir, "cuda")
    gpu = _run(
        Predictor(model, card, torch.device("cuda")),
        films,
        tmp_path,
        Settings(gpu_batch=4, decode_workers=2),
    )
    for c, g in zip(cpu, gpu, strict=True):
        assert (c.error, c.unreadable) == (g.error, g.unreadable)
        if c.error is None:
            assert abs(c.age_days - g.age_days) <= 1
            assert set(g.ms) == set(STAGES)


@pytest.mark.gpu
@needs_cuda
def test_a_compiled_backbone_gives_the_eager_ages(model_dir, films):
    model, card = checkpoint.load(model_dir, "cuda")
    eager = Predictor(model, card, torch.device("cuda")).run(films, batch_size=4)
    compiled = Predictor(model, card, torch.device("cuda"), compile=True).run(films, batch_size=4)
    assert [r.error for r in compiled] == [r.error for r in eager]
    for e, c in zip(eager, compiled, strict=True):
        if e.error is None:
            assert abs(e.age_days - c.age_days) <= 1
