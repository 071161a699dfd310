import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.tag import Tag
from pydicom.uid import (
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from portal.ingest.dicom import (
    CodestreamError,
    Limits,
    Rejected,
    blank_free_text,
    check_j2k_codestream,
    check_radiograph,
    compute_age,
    format_patient_age,
    number_of_frames,
)
from portal.ingest.dicom.codestream import free_text_spans


def _ds(**attrs) -> Dataset:
    ds = Dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def test_age_from_birth_and_study_date_is_exact_to_the_day():
    age = compute_age(_ds(PatientBirthDate="20160229", StudyDate="20200301"))
    assert (age.days, age.source, age.resolution_days) == (1462, "birthdate", 1)


def test_age_uses_acquisition_date_when_study_date_is_missing():
    age = compute_age(_ds(PatientBirthDate="20200101", AcquisitionDate="20200111"))
    assert age.days == 10


def test_age_reads_acr_nema_dotted_dates():
    assert compute_age(_ds(PatientBirthDate="2019.01.01", StudyDate="2019.02.01")).days == 31


@pytest.mark.parametrize(
    ("value", "days", "resolution"),
    [("010D", 10, 1), ("003W", 21, 7), ("006M", 183, 30), ("005Y", 1826, 365), ("7y", 2557, 365)],
)
def test_age_from_patient_age_when_birth_date_is_missing(value, days, resolution):
    age = compute_age(_ds(PatientAge=value, StudyDate="20200101"))
    assert (age.days, age.source, age.resolution_days) == (days, "patient_age", resolution)


def test_unparseable_birth_date_falls_back_to_patient_age():
    age = compute_age(_ds(PatientBirthDate="2019XX01", StudyDate="20200101", PatientAge="002Y"))
    assert age.source == "patient_age"


def test_age_of_eighteen_years_is_rejected_on_the_birthday():
    with pytest.raises(Rejected, match="18 years or more"):
        compute_age(_ds(PatientBirthDate="20000515", StudyDate="20180515"))
    assert compute_age(_ds(PatientBirthDate="20000515", StudyDate="20180514")).days == 6573


def test_patient_age_of_eighteen_years_is_rejected():
    with pytest.raises(Rejected, match="18 years or more"):
        compute_age(_ds(PatientAge="018Y"))


@pytest.mark.parametrize("value", ["018Y", "216M", "940W", "999W", "216m"])
def test_patient_age_at_or_past_eighteen_years_is_rejected_whatever_the_unit(value):
    with pytest.raises(Rejected, match=r"age 1[89]\.\d years is out of scope \(18 years or more\)"):
        compute_age(_ds(PatientAge=value))


@pytest.mark.parametrize(("value", "days"), [("017Y", 6209), ("215M", 6544), ("939W", 6573)])
def test_patient_age_just_under_eighteen_years_is_accepted(value, days):
    assert compute_age(_ds(PatientAge=value)).days == days


@pytest.mark.parametrize(("value", "frames"), [(None, 1), ("", 1), ("1", 1), (" 2 ", 2), ("+3", 3)])
def test_number_of_frames_reads_whole_numbers(value, frames):
    ds = _ds() if value is None else _ds(NumberOfFrames=value)
    assert number_of_frames(ds) == frames


@pytest.mark.parametrize("raw", [b"1A", b"0", b"-1", b"1.5", b"1_0", b"1\\2"])
def test_invalid_number_of_frames_is_rejected_without_quoting_it(raw):
    ds = _ds()
    tag = Tag(0x0028, 0x0008)
    ds[tag] = RawDataElement(tag, "IS", len(raw), raw, 0, False, True)
    with pytest.raises(Rejected, match=r"^invalid NumberOfFrames \(not a whole number") as exc:
        number_of_frames(ds)
    assert raw.decode() not in str(exc.value)


def test_negative_age_is_rejected():
    with pytest.raises(Rejected, match="negative age"):
        compute_age(_ds(PatientBirthDate="20200102", StudyDate="20200101"))


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({}, "no birth date and no PatientAge"),
        ({"PatientBirthDate": "garbage"}, "the birth date cannot be parsed"),
        ({"PatientBirthDate": "20100101"}, "no study or acquisition date"),
        ({"PatientAge": "ten years"}, "PatientAge cannot be parsed"),
    ],
)
def test_missing_or_unparseable_age_is_rejected_with_the_reason(attrs, reason):
    with pytest.raises(Rejected, match=reason):
        compute_age(_ds(**attrs))


def test_patient_age_string_uses_the_finest_unit_that_fits():
    assert [format_patient_age(d) for d in (5, 999, 1000, 6000)] == ["005D", "999D", "032M", "197M"]


def _chest_film_j2k(frame: bytes | None = None) -> Dataset:
    """The pydicom-data chest CR (1841 x 1955, JPEG 2000 lossless), its codestream replaced."""
    ds = pydicom.dcmread(get_testdata_file("RG1_J2KR.dcm"))
    if frame is not None:
        ds.PixelData = encapsulate([frame])
    return ds


def _codestream() -> bytes:
    return next(generate_frames(_chest_film_j2k().PixelData, number_of_frames=1))


def test_jpeg2000_film_is_checked_without_a_full_resolution_decode(monkeypatch):
    def full_decode(*args, **kwargs):
        raise AssertionError("decoded at full resolution")

    monkeypatch.setattr(Dataset, "pixel_array", property(full_decode))
    monkeypatch.setattr("portal.ingest.dicom.pixels.pixel_array", full_decode)
    check_radiograph(_chest_film_j2k(), Limits())


def test_jpeg2000_codestream_is_walked_to_its_end_marker():
    frame = _codestream()
    assert check_j2k_codestream(frame, rows=1955, cols=1841) == 5  # decomposition levels


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: f[: len(f) // 2], "its tile-parts do not end at EOC"),
        (lambda f: b"\0\0" + f[2:], "it does not start with SOC and SIZ"),
        (lambda f: f + b"more data after it", "data after the end of the codestream"),
        # Damaged coded data of the lowest resolutions: the reduced decode finds it.
        (lambda f: f[:110] + b"\xff" * 2000 + f[2110:], "JPEG 2000 Image Compression"),
    ],
    ids=["truncated", "no-soc", "trailing-data", "damaged-coded-data"],
)
def test_corrupt_jpeg2000_codestream_is_rejected(damage, reason):
    with pytest.raises(Rejected, match=r"damaged or truncated pixel data \(JPEG 2000") as raised:
        check_radiograph(_chest_film_j2k(damage(_codestream())), Limits())
    assert reason in str(raised.value)


def test_jpeg2000_codestream_of_another_geometry_is_rejected():
    ds = _chest_film_j2k()
    ds.Rows = 1954
    with pytest.raises(Rejected, match=r"decodes to \(1955, 1841\), not 1954x1841"):
        check_radiograph(ds, Limits())


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def test_free_text_of_a_jpeg_frame_is_its_com_and_app_segments_and_nothing_in_its_scan():
    # Coded data with a stuffed 0xFF (FF 00), a restart marker and text-like bytes, then fill
    # bytes before EOI: only the segments' parameters are free text.
    coded = b"\x12\xff\x00\x34" + b"\xff\xd3" + b"\xfe\xe1 DOE^JANE \xff\x00"
    frame = (
        b"\xff\xd8"
        + _segment(0xE0, b"JFIF\0thumb")
        + _segment(0xDB, bytes(65))
        + _segment(0xFE, b"DOE^JANE")
        + _segment(0xC0, bytes(9))
        + _segment(0xDA, bytes(6))
        + coded
        + b"\xff\xff\xd9"
    )
    spans = free_text_spans(frame, JPEGBaseline8Bit)
    assert [frame[a:b] for a, b in spans] == [b"JFIF\0thumb", b"DOE^JANE"]


def test_free_text_of_a_jpeg_ls_frame_reads_its_bit_stuffing():
    # In JPEG-LS, 0xFF followed by a byte under 0x80 is coded data, not a marker.
    frame = (
        b"\xff\xd8"
        + _segment(0xF7, bytes(9))  # SOF55
        + _segment(0xDA, bytes(6))
        + b"\xff\x7f\xff\x10DOE"
        + _segment(0xFE, b"DOE^JANE")  # a comment between scans
        + _segment(0xDA, bytes(6))
        + b"\x01"
        + b"\xff\xd9"
    )
    spans = free_text_spans(frame, JPEGLSLossless)
    assert [frame[a:b] for a, b in spans] == [b"DOE^JANE"]


def test_free_text_of_a_jpeg_2000_frame_is_the_text_of_its_com_segments():
    com = _segment(0x64, b"\0\1DOE^JANE")
    body = com + b"\xff\x93" + b"coded"  # the tile-part header's comment, SOD, coded data
    sot = _segment(0x90, b"\0\0" + (12 + len(body)).to_bytes(4, "big") + b"\0\1")  # Psot
    frame = b"\xff\x4f" + _segment(0x51, bytes(38)) + _segment(0x52, bytes(10)) + com + sot + body
    frame += b"\xff\xd9"
    spans = free_text_spans(frame, HTJ2KLossless)
    assert [frame[a:b] for a, b in spans] == [b"DOE^JANE", b"DOE^JANE"]


def test_free_text_of_an_rle_frame_is_its_headers_unused_offsets():
    header = (2).to_bytes(4, "little") + (64).to_bytes(4, "little") + (80).to_bytes(4, "little")
    frame = header.ljust(64, b"\0") + bytes(32)
    assert free_text_spans(frame, RLELossless) == [(12, 64)]
    assert free_text_spans(frame, ExplicitVRLittleEndian) == []  # native: its bits (elsewhere)


def test_blanking_free_text_keeps_every_length_across_fragments():
    text = b"DOE^JANE and a long comment that a fragment boundary cuts"
    frame = b"\xff\xd8" + _segment(0xFE, text) + _segment(0xDA, bytes(6)) + b"\x11\xff\xd9"
    value = encapsulate([frame], fragments_per_frame=3)
    blanked = blank_free_text(value, JPEGBaseline8Bit)
    assert len(blanked) == len(value)
    assert b"DOE^JANE" not in blanked
    assert b"comment" not in blanked
    assert b"".join(generate_frames(blanked, number_of_frames=1)) == frame.replace(
        text, bytes(len(text))
    )
    plain = encapsulate([b"\xff\xd8" + _segment(0xDA, bytes(6)) + b"\x11\xff\xd9"])
    assert blank_free_text(plain, JPEGBaseline8Bit) is plain  # nothing to blank: not copied


def test_a_jpeg_frame_whose_markers_cannot_be_walked_is_refused():
    frame = b"\xff\xd8" + _segment(0xFE, b"text")[:-2] + b"\xff\xd9"  # Lcom past its end
    with pytest.raises(CodestreamError):
        free_text_spans(frame, JPEGBaseline8Bit)
    with pytest.raises(Rejected, match=r"damaged or truncated pixel data \(JPEG Baseline"):
        blank_free_text(encapsulate([frame]), JPEGBaseline8Bit)
