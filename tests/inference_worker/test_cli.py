"""train -> evaluate -> predict from the command line, on a handful of phantoms."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from pydicom.uid import RLELossless

from inference_worker import checkpoint
from inference_worker.synthetic import generate
from inference_worker.train import patient_split, read_manifest
from tests.dicom_files import make_dicom

pytestmark = pytest.mark.train  # trains a model on phantoms: not in `make test-fast`


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=600
    )


def train(data: Path, out: Path, *, epochs: int, resume: bool = False):
    args = [
        "--manifest",
        str(data / "manifest.csv"),
        "--out",
        str(out),
        "--arch",
        "ca_resnet18",
        "--width",
        "8",
        "--pool",
        "avgmax",
        "--size",
        "64",
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--val-fraction",
        "0.3",
        "--workers",
        "1",
    ]
    return run("inference_worker.train", *args, *(["--resume"] if resume else []))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    data = tmp_path_factory.mktemp("phantoms")
    generate(data, 24, seed=2, profile="north")
    out = data.parent / f"{data.name}-model"
    result = train(data, out, epochs=1)
    assert result.returncode == 0, result.stderr
    return data, out


def test_train_writes_a_checkpoint_folder_with_a_model_card(trained):
    _, out = trained
    card = json.loads((out / "model_card.json").read_text())
    assert card["sha256"] == checkpoint.sha256_of(out / "weights.pt")
    assert (card["architecture"], card["width"], card["pool"]) == ("ca_resnet18", 8, "avgmax")
    assert card["input_size"] == 64
    assert card["training_data"]["train_images"] + card["training_data"]["validation_images"] == 24
    assert "0-1" in card["metrics"]["validation"]["by_group"]
    assert set(card["normalisation"]) >= {"input_mean", "input_std", "age_mean_days"}
    state = torch.load(out / "weights.pt", weights_only=True)
    assert any(key.endswith("attn.conv_h.weight") for key in state)


def test_training_resumes_where_it_stopped(trained):
    data, out = trained
    result = train(data, out, epochs=2, resume=True)
    assert result.returncode == 0, result.stderr
    assert "resuming after epoch 1" in result.stderr
    assert "epoch 2/2" in result.stderr
    assert "epoch 1/2" not in result.stderr


def test_patient_level_split_keeps_each_patient_on_one_side(trained):
    data, _ = trained
    samples = read_manifest(data / "manifest.csv")
    train, val = patient_split(samples, 0.3, seed=0)
    assert {s.patient for s in train}.isdisjoint({s.patient for s in val})


def test_evaluate_prints_metrics_per_age_group_and_sex(trained):
    data, out = trained
    result = run(
        "inference_worker.evaluate",
        "--manifest",
        str(data / "manifest.csv"),
        "--model",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    rep = json.loads(result.stdout)
    assert rep["overall"]["n"] == 24
    assert rep["label_column"] == "true_age_days"
    assert set(rep["overall"]) >= {
        "mae_months",
        "mape_percent",
        "rmse_months",
        "bias_months",
        "spearman_rho",
    }
    assert "6-12 F" in rep["by_group_sex"]
    assert rep["by_site"]["north"]["n"] == 24


def test_predict_prints_one_json_object_per_file_with_a_heatmap(trained, tmp_path):
    data, out = trained
    files = sorted(str(p) for p in data.glob("*.dcm"))[:3]
    result = run(
        "inference_worker.predict",
        *files,
        "--model",
        str(out),
        "--heatmaps",
        str(tmp_path / "heat"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == files
    for line in lines:
        assert isinstance(line["age_days"], int)
        assert line["age_days"] >= 0
        assert Image.open(line["heatmap"]).mode == "L"
        assert set(line["ms"]) == {"load", "preprocess", "predict", "heatmap", "encode"}


def test_predict_reports_an_unreadable_file_in_json_and_exits_1(trained, tmp_path):
    data, out = trained
    good = sorted(str(p) for p in data.glob("*.dcm"))[:2]
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a dicom")
    files = [good[0], str(broken), good[1]]
    result = run(
        "inference_worker.predict", *files, "--model", str(out), "--json", "--workers", "1"
    )
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == files
    assert lines[1] == {
        "file": str(broken),
        "error": "cannot read the file: InvalidDicomError: File is missing DICOM File Meta "
        "Information header or the 'DICM' prefix is missing from the header. Use force=True to "
        "force reading.",
        "unreadable": True,
    }
    assert isinstance(lines[2]["age_days"], int)


def test_predict_refuses_weights_that_do_not_match_their_card(trained, tmp_path):
    data, out = trained
    altered = tmp_path / "altered"
    altered.mkdir()
    (altered / "model_card.json").write_text((out / "model_card.json").read_text())
    state = torch.load(out / "weights.pt", weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 1
    torch.save(state, altered / "weights.pt")
    result = run("inference_worker.predict", str(next(data.glob("*.dcm"))), "--model", str(altered))
    assert result.returncode == 2
    assert "does not match the model card" in result.stderr


@pytest.mark.parametrize("workers", ["0", "1"])
def test_predict_prints_none_of_pydicoms_warnings_about_a_truncated_file(
    trained, tmp_path, workers
):
    """pydicom warns "End of file reached ... in file PATH" about an encapsulated file that
    ends early; neither this process nor a decoding process prints it (quiet_pydicom)."""
    _, out = trained
    whole = make_dicom(tmp_path / "whole.dcm", transfer_syntax=RLELossless).read_bytes()
    cut = tmp_path / "DOE^JANE" / "cut.dcm"
    cut.parent.mkdir()
    cut.write_bytes(whole[: len(whole) * 6 // 10])
    result = run(
        "inference_worker.predict", str(cut), "--model", str(out), "--json", "--workers", workers
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["error"]  # refused, in the report the operator asked for
    for leak in ("DOE^JANE", "End of file", "UserWarning"):
        assert leak not in result.stderr, result.stderr[-2000:]
