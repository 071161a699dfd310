"""`manage.py verify_storage` in a real subprocess, and the heatmap sha256 from worker to row."""

import hashlib
import json

import pytest

from inference_worker.predict import run_batch
from portal.predictions import services
from portal.predictions.integrity import file_sha256, storage_verify
from portal.predictions.models import Prediction
from tests.conftest import manage
from tests.portal import factories as f
from tests.portal.predictions.test_jobs import make_checkpoint

pytestmark = pytest.mark.django_db(transaction=True)


def make_world(site, data_dir, count: int = 3) -> tuple[list, list[Prediction]]:
    """Images with real files and predictions with heatmaps, every hash the true one."""
    version = f.model_version("m1")
    images, predictions = [], []
    for _ in range(count):
        image = f.image(site, dicom=True)
        image.sha256 = file_sha256(data_dir / image.file)  # the factory's is a placeholder
        image.save(update_fields=["sha256"])
        prediction = f.prediction(image, version, age_days=1000, heatmap=True)
        prediction.heatmap_sha256 = file_sha256(data_dir / prediction.heatmap)
        prediction.save(update_fields=["heatmap_sha256"])
        images.append(image)
        predictions.append(prediction)
    return images, predictions


def verify(data_dir, *args: str):
    result = manage("verify_storage", *args, data_dir=data_dir)
    assert result.returncode in (0, 1), result.stderr
    return result


def test_verify_storage_passes_when_every_file_matches_and_ignores_work_in_progress(site, data_dir):
    make_world(site, data_dir)
    (data_dir / "tmp").mkdir()
    (data_dir / "tmp" / "ingest-1.dcm").write_bytes(b"half written")
    (data_dir / "staging" / "7").mkdir(parents=True)
    (data_dir / "staging" / "7" / "f-1").write_bytes(b"staged")
    (data_dir / "heatmaps" / "m1" / ".next.png.tmp").write_bytes(b"being written")

    result = verify(data_dir, "--json")

    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert report == {
        "checked": 6,
        "missing": [],
        "altered": [],
        "orphaned": [],
        "not_verifiable": [],
    }
    text = verify(data_dir)
    assert text.returncode == 0
    assert "6 files checked: 0 missing, 0 altered, 0 orphaned, 0 not verifiable" in text.stdout


def test_verify_storage_names_missing_altered_and_orphaned_files_and_exits_1(site, data_dir):
    images, predictions = make_world(site, data_dir, count=4)
    (data_dir / images[0].file).unlink()
    altered = data_dir / images[1].file
    data = bytearray(altered.read_bytes())
    data[-1] ^= 0xFF  # one byte of the pixel data
    altered.write_bytes(bytes(data))
    heatmap = data_dir / predictions[2].heatmap
    heatmap.write_bytes(heatmap.read_bytes() + b"\0")
    (data_dir / "images" / site.slug / "stray.dcm").write_bytes(b"no row names me")
    (data_dir / "heatmaps" / "gone").mkdir()
    (data_dir / "heatmaps" / "gone" / "old.png").write_bytes(b"nor me")

    result = verify(data_dir, "--json")

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["checked"] == 8
    assert report["missing"] == [{"path": images[0].file, "image": images[0].pk}]
    assert report["altered"] == [
        {"path": images[1].file, "image": images[1].pk},
        {"path": predictions[2].heatmap, "prediction": predictions[2].pk, "image": images[2].pk},
    ]
    assert report["orphaned"] == [
        {"path": f"images/{site.slug}/stray.dcm"},
        {"path": "heatmaps/gone/old.png"},
    ]
    assert not report["not_verifiable"]
    assert str(data_dir) not in result.stdout  # paths are relative to the data folder

    text = verify(data_dir)
    assert text.returncode == 1
    assert f"missing: {images[0].file} (image {images[0].pk})" in text.stdout
    assert f"altered: {images[1].file} (image {images[1].pk})" in text.stdout
    assert (
        f"altered: {predictions[2].heatmap} (image {images[2].pk}, prediction {predictions[2].pk})"
        in text.stdout
    )
    assert f"orphaned: images/{site.slug}/stray.dcm" in text.stdout
    assert "orphaned: heatmaps/gone/old.png" in text.stdout


def test_a_heatmap_stored_without_a_hash_is_not_verifiable_rather_than_altered(site, data_dir):
    images, predictions = make_world(site, data_dir, count=2)
    Prediction.objects.filter(pk=predictions[0].pk).update(heatmap_sha256="")
    (data_dir / predictions[0].heatmap).write_bytes(b"cannot tell")

    report = storage_verify()

    assert report.ok
    assert report.not_verifiable == [
        {"path": predictions[0].heatmap, "prediction": predictions[0].pk, "image": images[0].pk}
    ]
    (data_dir / predictions[0].heatmap).unlink()
    assert [e["path"] for e in storage_verify().missing] == [predictions[0].heatmap]


def test_the_worker_answer_carries_the_heatmap_sha256_and_the_portal_keeps_it(
    site, data_dir, tmp_path
):
    make_checkpoint(tmp_path / "ckpt")
    version = services.model_version_register(folder=tmp_path / "ckpt")
    image = f.image(site, dicom=True)
    image.sha256 = file_sha256(data_dir / image.file)
    image.save(update_fields=["sha256"])
    heatmap = f"heatmaps/{version.name}/{image.uuid}.png"
    payload = {
        "job": None,
        "model": {"name": version.name, "path": version.path, "sha256": version.sha256},
        "images": [{"id": image.pk, "path": image.file, "sex": image.sex, "heatmap": heatmap}],
    }

    answer = run_batch(payload, data_dir)

    (result,) = answer["results"]
    assert "error" not in result, result
    assert result["heatmap"] == heatmap
    assert result["heatmap_sha256"] == hashlib.sha256((data_dir / heatmap).read_bytes()).hexdigest()
    services.prediction_results_store(answer=answer)
    prediction = Prediction.objects.get(image=image, model_version=version)
    assert prediction.heatmap_sha256 == result["heatmap_sha256"]
    report = storage_verify()
    assert (report.ok, report.checked, report.not_verifiable) == (True, 2, [])
