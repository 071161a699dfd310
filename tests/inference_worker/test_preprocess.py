import numpy as np
import pydicom
import pytest
import torch
from pydicom.uid import JPEG2000Lossless, RLELossless

from inference_worker.preprocess import MEAN, STD, preprocess, read_pixels
from tests.dicom_files import make_dicom


@pytest.fixture
def picture() -> np.ndarray:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:120, 0:100]
    base = 1500 + 1200 * np.exp(-((yy - 60) ** 2 + (xx - 50) ** 2) / 900)
    return (base + rng.normal(0, 40, base.shape)).clip(0, 4095).astype(np.uint16)


def test_same_picture_gives_identical_tensors_in_every_transfer_syntax(picture, tmp_path):
    tensors = []
    for name, syntax in [("plain", None), ("j2k", JPEG2000Lossless), ("rle", RLELossless)]:
        kwargs = {"transfer_syntax": syntax} if syntax else {}
        path = make_dicom(tmp_path / f"{name}.dcm", rows=120, cols=100, pixels=picture, **kwargs)
        tensors.append(preprocess(pydicom.dcmread(path), 64)[0])
    assert pydicom.dcmread(tmp_path / "j2k.dcm").file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert torch.equal(tensors[0], tensors[1])
    assert torch.equal(tensors[0], tensors[2])


def test_monochrome1_and_monochrome2_versions_of_one_picture_give_identical_tensors(
    picture, tmp_path
):
    mono2 = make_dicom(tmp_path / "m2.dcm", rows=120, cols=100, pixels=picture)
    mono1 = make_dicom(
        tmp_path / "m1.dcm", rows=120, cols=100, pixels=4095 - picture, photometric="MONOCHROME1"
    )
    a = preprocess(pydicom.dcmread(mono2), 64)[0]
    b = preprocess(pydicom.dcmread(mono1), 64)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_resize_keeps_the_aspect_ratio_and_pads_to_a_centred_square(tmp_path):
    pixels = np.full((96, 48), 3000, dtype=np.uint16)
    pixels[::2] = 1000
    tensor, geometry = preprocess(
        pydicom.dcmread(make_dicom(tmp_path / "a.dcm", rows=96, cols=48, pixels=pixels)), 64
    )
    assert tensor.shape == (1, 64, 64)
    assert (geometry.scaled_rows, geometry.scaled_columns, geometry.top, geometry.left) == (
        64,
        32,
        0,
        16,
    )
    background = -MEAN / STD
    assert torch.all(tensor[:, :, :16] == background)
    assert torch.all(tensor[:, :, 48:] == background)
    assert tensor[:, :, 16:48].std() > 0


def test_window_in_the_file_wins_over_the_percentile_window(picture, tmp_path):
    path = make_dicom(
        tmp_path / "w.dcm",
        rows=120,
        cols=100,
        pixels=picture,
        extra={"WindowCenter": 2000, "WindowWidth": 400},
    )
    image = read_pixels(pydicom.dcmread(path))
    assert image[picture <= 1800].max() == 0.0
    assert image[picture >= 2200].min() == 1.0
