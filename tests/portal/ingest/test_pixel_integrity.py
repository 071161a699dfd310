"""A film is accepted only if its pixel data decode completely and hold a usable image.

Real files from the packages installed with the project (pydicom-data, nibabel, pynetdicom,
deid-data) and films built from their pixels, in every compressed encoding: intact ones are
accepted and keep their pixels; cut, mislabelled or truncated ones are refused with a reason
that names the damage and the syntax. Each goes through `prepare`, ingest's worker step.
"""

import importlib
import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from portal.ingest.dicom import Limits, Rejected, check_radiograph
from portal.ingest.dicom.checks import COUNTED_LEVELS, MIN_USABLE_GREY_LEVELS, _nearest_ranks
from portal.ingest.prepare import Prepared, Refused, prepare
from tests.dicom_files import BIRTH_DATE, STUDY_DATE, make_dicom

DAMAGED = "damaged or truncated pixel data"


def _package_file(package: str, relative: str) -> Path:
    return Path(importlib.import_module(package).__file__).parent / relative


# Real single-frame grayscale films, one or more per encoding, as their packages ship them.
REAL_FILMS = {
    "cr-j2k-lossless": Path(get_testdata_file("RG1_J2KR.dcm")),
    "cr-j2k": Path(get_testdata_file("RG3_J2KI.dcm")),
    "cr-explicit": Path(get_testdata_file("RG1_UNCR.dcm")),
    "dx-cat-explicit": _package_file("deid_data", "data/animals/cat.dcm"),
    "mr-j2k-nibabel": _package_file("nibabel", "nicom/tests/data/slicethickness_empty_string.dcm"),
    "mr-j2k-pynetdicom": _package_file(
        "pynetdicom", "tests/dicom_files/MRImageStorage_JPG2000_Lossless.dcm"
    ),
    "mr-big-endian-pynetdicom": _package_file(
        "pynetdicom", "tests/dicom_files/MRImageStorage_ExplicitVRBigEndian.dcm"
    ),
    "ot-deflated-pynetdicom": _package_file(
        "pynetdicom", "tests/dicom_files/SCImageStorage_Deflated.dcm"
    ),
    "rt-implicit-pynetdicom": _package_file("pynetdicom", "tests/dicom_files/RTImageStorage.dcm"),
    "mr-implicit-nibabel": _package_file("nibabel", "nicom/tests/data/0.dcm"),
    "nm-jpeg-lossless": Path(get_testdata_file("JPEG-LL.dcm")),
    "nm-jpeg-extended": Path(get_testdata_file("JPGExtended.dcm")),
    "mr-jpeg-ls": Path(get_testdata_file("MR_small_jpeg_ls_lossless.dcm")),
    "mr-rle": Path(get_testdata_file("MR_small_RLE.dcm")),
    "us-rle-8bit": Path(get_testdata_file("OBXXXX1A_rle.dcm")),
}


def _as_child(ds: Dataset) -> Dataset:
    """A child's chest film, its encoding and pixels as they were."""
    ds.Modality, ds.BodyPartExamined = "DX", "CHEST"
    ds.PatientBirthDate, ds.StudyDate = BIRTH_DATE, STUDY_DATE
    if ds.PhotometricInterpretation == "PALETTE COLOR":  # its indices, as grey levels
        ds.PhotometricInterpretation = "MONOCHROME2"
    for keyword in ("PatientSpeciesDescription", "PatientSpeciesCodeSequence", "PatientAge"):
        if keyword in ds:
            delattr(ds, keyword)
    for keyword in ("PatientBreedDescription", "PatientBreedCodeSequence"):
        if keyword in ds:
            delattr(ds, keyword)
    return ds


def _real(name: str) -> Dataset:
    return _as_child(pydicom.dcmread(REAL_FILMS[name]))


def _chest_pixels(rows: int, cols: int, bits: int, seed: int = 0) -> np.ndarray:
    """Smooth anatomy-like shading and noise over most of the range of `bits`."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    shade = (np.sin(yy / 37) + np.cos(xx / 53) + 2) / 4
    noise = np.random.default_rng(seed).normal(0, 0.02, (rows, cols))
    return np.clip((shade + noise) * (2**bits - 1), 0, 2**bits - 1).astype(np.uint16)


def _built(tmp_path: Path, ts: UID) -> Dataset:
    """A child's chest film made from a real chest film's pixels, in `ts`."""
    real = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")).pixel_array[::4, ::4]
    if ts == JPEGBaseline8Bit:
        pixels = (real >> 7).astype(np.uint8)
        ds = pydicom.dcmread(
            make_dicom(
                tmp_path / "src.dcm",
                pixels=pixels,
                bits_stored=8,
                rows=pixels.shape[0],
                cols=pixels.shape[1],
            )
        )
        out = io.BytesIO()
        PILImage.fromarray(pixels).save(out, "JPEG", quality=95)
        ds.PixelData = encapsulate([out.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        return ds
    ds = pydicom.dcmread(
        make_dicom(
            tmp_path / "src.dcm",
            pixels=real,
            bits_stored=15,
            rows=real.shape[0],
            cols=real.shape[1],
        )
    )
    ds.compress(ts)
    return ds


def _prepare(ds: Dataset, path: Path) -> Prepared | Refused:
    ds.save_as(path)
    return prepare(str(path), b"k" * 32, Limits(), str(path.parent))


def _cut(ds: Dataset, fraction: float = 0.6) -> Dataset:
    """The frame's codestream cut at `fraction`, as a valid Part 10 file (even length)."""
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    keep = int(len(frame) * fraction) // 2 * 2
    ds.PixelData = encapsulate([frame[:keep]])
    return ds


def _decoded(path: Path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array


COMPRESSED_REAL = [
    "cr-j2k-lossless",
    "cr-j2k",
    "mr-j2k-nibabel",
    "mr-j2k-pynetdicom",
    "nm-jpeg-lossless",
    "nm-jpeg-extended",
    "mr-jpeg-ls",
    "mr-rle",
    "us-rle-8bit",
]
BUILT = [JPEGBaseline8Bit, JPEGLSLossless, RLELossless, JPEG2000Lossless]


@pytest.mark.parametrize("name", sorted(REAL_FILMS))
def test_real_film_of_every_encoding_is_accepted_with_its_pixels(name, tmp_path):
    ds = _real(name)
    sent = tmp_path / "sent.dcm"
    outcome = _prepare(ds, sent)
    assert isinstance(outcome, Prepared), outcome
    stored = pydicom.dcmread(outcome.tmp_path)
    ts = ds.file_meta.TransferSyntaxUID
    assert stored.file_meta.TransferSyntaxUID == (
        ExplicitVRLittleEndian if ts == DeflatedExplicitVRLittleEndian else ts
    )
    np.testing.assert_array_equal(stored.pixel_array, _decoded(sent))


@pytest.mark.parametrize("ts", BUILT, ids=lambda ts: UID(ts).keyword)
def test_built_film_of_every_compressed_encoding_is_accepted_with_its_pixels(ts, tmp_path):
    sent = tmp_path / "sent.dcm"
    outcome = _prepare(_built(tmp_path, ts), sent)
    assert isinstance(outcome, Prepared), outcome
    np.testing.assert_array_equal(_decoded(Path(outcome.tmp_path)), _decoded(sent))


CUT_CASES = [
    *(pytest.param(lambda tmp_path, name=name: _real(name), id=name) for name in COMPRESSED_REAL),
    *(
        pytest.param(lambda tmp_path, ts=ts: _built(tmp_path, ts), id=UID(ts).keyword)
        for ts in BUILT
    ),
]


@pytest.mark.parametrize("make", CUT_CASES)
@pytest.mark.parametrize("fraction", [0.6, 0.95])
def test_codestream_cut_short_is_refused_as_damaged_naming_its_syntax(make, fraction, tmp_path):
    ds = make(tmp_path)
    name = ds.file_meta.TransferSyntaxUID.name
    with warnings.catch_warnings(record=True) as printed:
        warnings.simplefilter("always")
        outcome = _prepare(_cut(ds, fraction), tmp_path / "cut.dcm")
    assert isinstance(outcome, Refused)
    assert outcome.reason.startswith(f"{DAMAGED} ({name}"), outcome.reason
    assert not printed  # what the decoders say is turned into the reason, not printed


@pytest.mark.parametrize(
    ("source", "delta"),
    [
        ("mr-rle", 1),
        ("mr-rle", 6),
        *((s, d) for s in ("us-rle-8bit", "built") for d in (-24, -1, 1, 6)),
    ],
)
def test_rle_header_rows_that_disagree_with_the_segments_are_refused(source, delta, tmp_path):
    ds = _built(tmp_path, RLELossless) if source == "built" else _real(source)
    ds.Rows = ds.Rows + delta
    outcome = _prepare(ds, tmp_path / "rows.dcm")
    assert isinstance(outcome, Refused)
    assert outcome.reason.startswith(f"{DAMAGED} (RLE Lossless: an RLE segment holds"), outcome
    assert "not Rows x Columns" in outcome.reason


def test_rle_header_saying_1000_rows_of_a_1024_row_film_is_refused(tmp_path):
    path = make_dicom(
        tmp_path / "src.dcm",
        rows=1024,
        cols=256,
        transfer_syntax=RLELossless,
        pixels=_chest_pixels(1024, 256, 12),
    )
    ds = pydicom.dcmread(path)
    ds.Rows = 1000
    outcome = _prepare(ds, tmp_path / "rows.dcm")
    assert isinstance(outcome, Refused)
    assert f"{DAMAGED} (RLE Lossless" in outcome.reason


@pytest.mark.parametrize(
    "name",
    [
        *COMPRESSED_REAL,
        "cr-explicit",
        "rt-implicit-pynetdicom",
        "mr-big-endian-pynetdicom",
        "ot-deflated-pynetdicom",
    ],
)
@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_file_that_ends_inside_its_pixel_data_is_refused_as_truncated(name, fraction, tmp_path):
    whole = tmp_path / "whole.dcm"
    _real(name).save_as(whole)
    data = whole.read_bytes()
    # From the Pixel Data element's tag on; a deflated file's are in its deflated stream.
    start = max(0, data.rfind(b"\xe0\x7f\x10\x00"))
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: start + int((len(data) - start) * fraction)])
    outcome = prepare(str(cut), b"k" * 32, Limits(), str(tmp_path))
    assert isinstance(outcome, Refused)
    assert "truncated" in outcome.reason, outcome.reason
    assert "Modality" not in outcome.reason
    assert str(tmp_path) not in outcome.reason


@pytest.mark.parametrize("bits_stored", [12, 16])
@pytest.mark.parametrize("signed", [False, True])
def test_16_bit_jpeg2000_lossless_film_is_accepted_with_its_pixels(bits_stored, signed, tmp_path):
    """The issue's film: a 1416 x 1420 DX, 16 bits allocated, JPEG 2000 lossless."""
    pixels = _chest_pixels(1416, 1420, bits_stored - 1 if signed else bits_stored).astype(np.int32)
    if signed:
        pixels -= 2 ** (bits_stored - 2)
    path = make_dicom(
        tmp_path / "src.dcm",
        rows=1416,
        cols=1420,
        bits_stored=bits_stored,
        pixels=np.zeros((1416, 1420)),
    )
    ds = pydicom.dcmread(path)
    ds.PixelRepresentation = int(signed)
    ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()
    ds.compress(JPEG2000Lossless)
    outcome = _prepare(ds, tmp_path / "sent.dcm")
    assert isinstance(outcome, Prepared), outcome
    np.testing.assert_array_equal(_decoded(Path(outcome.tmp_path)), pixels)


def test_jpeg2000_film_whose_reduced_decode_fails_is_decoded_in_full(monkeypatch, tmp_path):
    """Pillow's reduced-resolution decode failing is no reason to refuse: pydicom's decoders
    read the film in full, and they decide."""

    def reduced_decode_fails(*args, **kwargs):
        raise OSError("broken data stream when reading image file")

    monkeypatch.setattr("portal.ingest.dicom.pixels._decode_j2k_reduced", reduced_decode_fails)
    outcome = _prepare(_real("cr-j2k-lossless"), tmp_path / "sent.dcm")
    assert isinstance(outcome, Prepared), outcome
    damaged = _real("cr-j2k-lossless")
    frame = next(generate_frames(damaged.PixelData, number_of_frames=1))
    damaged.PixelData = encapsulate([frame[:110] + b"\xff" * 2000 + frame[2110:]])
    outcome = _prepare(damaged, tmp_path / "damaged.dcm")
    assert isinstance(outcome, Refused)
    assert outcome.reason.startswith(f"{DAMAGED} (JPEG 2000 Image Compression (Lossless Only)")


def test_second_decoder_is_tried_when_the_first_fails(monkeypatch, tmp_path):
    """JPEG baseline: libjpeg (pylibjpeg) first, then Pillow. libjpeg failing on a film that
    Pillow decodes is no reason to refuse it."""
    from pydicom.pixels.decoders import pylibjpeg

    calls = []

    def libjpeg_fails(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("libjpeg error code -1038")

    decoders = pylibjpeg._DECODERS[JPEGBaseline8Bit]
    for name in list(decoders):
        monkeypatch.setitem(decoders, name, libjpeg_fails)
    outcome = _prepare(_built(tmp_path, JPEGBaseline8Bit), tmp_path / "sent.dcm")
    assert calls  # libjpeg was tried first
    assert isinstance(outcome, Prepared), outcome


@pytest.mark.parametrize(
    "ts",
    [ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless, JPEG2000Lossless],
    ids=lambda ts: UID(ts).keyword,
)
@pytest.mark.parametrize("value", [0, 2000])
def test_constant_pixel_data_is_refused(ts, value, tmp_path):
    pixels = np.full((128, 96), value, np.uint16)
    ds = pydicom.dcmread(make_dicom(tmp_path / "src.dcm", rows=128, cols=96, pixels=pixels))
    if ts == DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = ts
    elif ts != ExplicitVRLittleEndian:
        ds.compress(ts)
    outcome = _prepare(ds, tmp_path / "sent.dcm")
    assert isinstance(outcome, Refused)
    assert outcome.reason.startswith("constant pixel data"), outcome.reason


@pytest.mark.parametrize(
    ("bits_stored", "levels", "refused"),
    [
        (12, MIN_USABLE_GREY_LEVELS - 2, True),
        (12, 40, False),
        (16, 40, True),
        (16, 200, False),
        (8, 12, True),
        (8, 30, False),
    ],
)
def test_usable_range_that_is_a_sliver_is_refused(bits_stored, levels, refused, tmp_path):
    rng = np.random.default_rng(3)
    pixels = 1000 % 2**bits_stored // 2 + rng.integers(0, levels + 1, (256, 200))
    path = make_dicom(
        tmp_path / "src.dcm", rows=256, cols=200, bits_stored=bits_stored, pixels=pixels
    )
    outcome = prepare(str(path), b"k" * 32, Limits(), str(tmp_path))
    if refused:
        assert isinstance(outcome, Refused)
        assert outcome.reason.startswith("usable range is a sliver"), outcome.reason
    else:
        assert isinstance(outcome, Prepared), outcome


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [
        (np.uint8, 0, 256),
        (np.uint16, 0, 4096),
        (np.uint16, 100, 100 + COUNTED_LEVELS),  # partitioned
        (np.uint16, 0, 65536),
        (np.int16, -2000, 2000),
        (np.int16, -32768, 32767),
        (np.uint16, 7, 9),
    ],
)
def test_the_usable_range_percentiles_are_a_sorts_nearest_ranks(dtype, low, high):
    """Counted or partitioned, the percentiles are the sorted sample's values at the ranks."""
    rng = np.random.default_rng(high)
    for size in (16384, 1001, 2):
        sample = rng.integers(low, high, size).astype(dtype)
        ranks = [round(q / 100 * (size - 1)) for q in (1.0, 99.0)]
        expected = [int(v) for v in np.sort(sample)[ranks]]
        assert _nearest_ranks(sample, ranks, int(sample.min()), int(sample.max())) == expected


def test_a_few_bright_pixels_on_a_blank_plate_are_still_a_sliver(tmp_path):
    pixels = np.full((256, 256), 300, np.uint16)
    pixels[::50, ::50] = 4000  # under 1% of the pixels
    ds = pydicom.dcmread(make_dicom(tmp_path / "src.dcm", rows=256, cols=256, pixels=pixels))
    with pytest.raises(Rejected, match="usable range is a sliver"):
        check_radiograph(ds, Limits())


def test_every_real_radiograph_and_test_film_clears_the_usable_range_rule(tmp_path):
    """The CR and DX films the packages ship, the test films and the phantoms' pixels."""
    for name in ("cr-j2k-lossless", "cr-j2k", "cr-explicit", "dx-cat-explicit"):
        check_radiograph(_real(name), Limits())
    for name in ("RG1_UNCI.dcm", "RG1_J2KI.dcm", "RG3_UNCR.dcm", "RG3_J2KR.dcm"):
        check_radiograph(_as_child(pydicom.dcmread(get_testdata_file(name))), Limits())
    for bits in (8, 10, 12, 16):
        check_radiograph(
            pydicom.dcmread(make_dicom(tmp_path / f"{bits}.dcm", bits_stored=bits)), Limits()
        )


def test_a_damaged_film_is_refused_after_weasyprint_was_imported(tmp_path):
    """WeasyPrint's import tells Pillow to fill truncated images with black, for the whole
    process (the web process renders report PDFs and ingests small uploads): the pixel checks
    still see the damage."""
    import weasyprint  # noqa: F401
    from PIL import ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = True  # as the import leaves it
    try:
        damaged = _real("cr-j2k-lossless")
        frame = next(generate_frames(damaged.PixelData, number_of_frames=1))
        damaged.PixelData = encapsulate([frame[:110] + b"\xff" * 2000 + frame[2110:]])
        outcome = _prepare(damaged, tmp_path / "damaged.dcm")
        assert isinstance(outcome, Refused)
        assert outcome.reason.startswith(f"{DAMAGED} (JPEG 2000")
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
