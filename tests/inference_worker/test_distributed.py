"""`torchrun --nproc_per_node 2 -m inference_worker.train` on the CPU (gloo): DDP over two
processes, each training on its own half of every epoch, rank 0 writing the checkpoint."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference_worker import checkpoint
from inference_worker.synthetic import generate
from inference_worker.train import SAMPLES, patient_split, read_manifest

pytestmark = pytest.mark.slow

RECIPE = [
    "--arch",
    "ca_resnet18",
    "--width",
    "8",
    "--size",
    "48",
    "--batch-size",
    "4",
    "--val-fraction",
    "0.3",
    "--workers",
    "1",
    "--record-samples",
]


def train(manifest: Path, out: Path, epochs: int, *, processes: int, resume: bool = False):
    # --standalone: a rendezvous on a free local port, so parallel test runs never clash.
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    args = ["--manifest", str(manifest), "--out", str(out), "--epochs", str(epochs), *RECIPE]
    command = [sys.executable, *(launcher if processes > 1 else []), "-m", "inference_worker.train"]
    return subprocess.run(
        [*command, *args, *(["--resume"] if resume else [])],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    data = tmp_path_factory.mktemp("phantoms")
    generate(data, 40, seed=3, profile="north")
    manifest = data / "manifest.csv"
    single, double = data.parent / f"{data.name}-one", data.parent / f"{data.name}-two"
    one = train(manifest, single, 1, processes=1)
    assert one.returncode == 0, one.stderr
    first = train(manifest, double, 1, processes=2)
    assert first.returncode == 0, first.stderr
    first_samples = [json.loads((double / SAMPLES.format(rank=r)).read_text()) for r in (0, 1)]
    resumed = train(manifest, double, 2, processes=2, resume=True)
    assert resumed.returncode == 0, resumed.stderr
    return {
        "manifest": manifest,
        "single": single,
        "double": double,
        "first": first,
        "resumed": resumed,
        "first_samples": first_samples,
    }


def shape(value: object) -> object:
    """A card's keys, all the way down (values differ between runs, keys may not)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return None


def train_rows(manifest: Path) -> set[int]:
    samples = read_manifest(manifest)
    train, _ = patient_split(samples, 0.3, seed=0)
    patients = {s.patient for s in train}
    return {i for i, s in enumerate(samples) if s.patient in patients}


def test_two_processes_write_a_card_of_the_same_shape_as_one_process(runs):
    single = checkpoint.read_card(runs["single"])
    double = checkpoint.verify(runs["double"])
    assert shape(double) == shape(single)
    assert double["training"]["processes"] == 2
    assert single["training"]["processes"] == 1
    one_line = json.loads(runs["resumed"].stdout)  # rank 0 alone prints the result
    assert one_line["sha256"] == double["sha256"]


def test_the_two_ranks_train_on_disjoint_halves_that_cover_the_training_set(runs):
    expected = train_rows(runs["manifest"])
    assert len(expected) % 2 == 0  # so that DistributedSampler pads no duplicate in
    resumed = [json.loads((runs["double"] / SAMPLES.format(rank=r)).read_text()) for r in (0, 1)]
    for epoch, records in (("1", runs["first_samples"]), ("2", resumed)):
        rank0, rank1 = (set(record[epoch]) for record in records)
        assert len(rank0) == len(records[0][epoch]) == len(expected) // 2
        assert rank0.isdisjoint(rank1)
        assert rank0 | rank1 == expected
    assert runs["first_samples"][0]["1"] != resumed[0]["2"]  # set_epoch reshuffles


def test_a_two_process_run_resumes_from_its_checkpoint_and_only_rank_0_reports(runs):
    stderr = runs["resumed"].stderr
    assert stderr.count("resuming after epoch 1") == 1
    assert stderr.count("epoch 2: train L1") == 1
    assert "epoch 1/2" not in stderr
    progress = json.loads((runs["double"] / "progress.json").read_text())
    assert progress["state"] == "done"
    assert progress["epoch"] == 2
    history = checkpoint.read_card(runs["double"])["training"]["history"]
    assert [h["epoch"] for h in history] in ([1], [1, 2])  # the best epoch's card
