"""A patient's name planted in folder and file names (as PACS exports write them) is found
nowhere afterwards: not in any table, any file under the data folder or staging, the logs or
the API's answers. Through the REST API (in batches, a ZIP among them, one upload left open
to expire) and through the CLI."""

import io
import logging
import re
import tempfile
import zipfile
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image as PILImage
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_fragmented_frames, generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)
from rest_framework.test import APIClient

from portal.ingest import deid
from portal.ingest.archive import Source
from portal.ingest.dicom import JPEG2000_SYNTAXES
from portal.ingest.models import Image, Upload, UploadFile
from portal.ingest.services import upload_create, upload_expire_stale, upload_process
from tests.conftest import manage, wait_for
from tests.dicom_files import BIRTH_DATE, STUDY_DATE, make_dicom

pytestmark = pytest.mark.django_db(transaction=True)
PLANTED = ("DOE^JANE", "Jane_Doe_MRN12345", "MRN12345")
PIXEL_DATA = Tag(0x7FE0, 0x0010)


@pytest.fixture(autouse=True)
def staging(settings, data_dir: Path) -> Path:
    """Staging in the test's data folder, where the test's Celery worker looks for it too."""
    settings.STAGING_DIR = data_dir / "staging"
    return settings.STAGING_DIR


def _export(root: Path) -> list[Path]:
    """A PACS-style export: a folder named after the patient, files named after the patient
    and the record number, one of them rejected, and a ZIP holding more of the same."""
    folder = root / "DOE^JANE"
    good = make_dicom(folder / "Jane_Doe_MRN12345.dcm")
    ct = make_dicom(folder / "Jane_Doe_MRN12345_CT.dcm", modality="CT")
    archive = folder / "DOE^JANE_Jane_Doe_MRN12345.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        inner = make_dicom(root.parent / "inner" / "x.dcm", sex="M").read_bytes()
        zf.writestr("DOE^JANE/Jane_Doe_MRN12345_2.dcm", inner)
        zf.writestr("DOE^JANE/Jane_Doe_MRN12345_bad.dcm", b"not dicom at all" * 20)
    return [good, ct, archive]


def _post(client: APIClient, url: str, paths: list[Path], root: Path, **extra) -> dict:
    body = {
        "files": [SimpleUploadedFile(p.name, p.read_bytes()) for p in paths],
        "paths": [p.relative_to(root).as_posix() for p in paths],
        **extra,
    }
    response = client.post(url, body, format="multipart")
    assert response.status_code in (200, 201), response.content
    return response


def _everything_in_the_database() -> str:
    return "\n".join(
        repr(row) for model in apps.get_models() for row in model.objects.all().values()
    )


def _every_file(*roots: Path) -> list[tuple[Path, bytes]]:
    files = []
    for root in roots:
        for path in root.rglob("*"):
            files.append((path, path.read_bytes() if path.is_file() else b""))
    return files


@pytest.mark.slow  # every way in, with real workers
def test_a_patient_name_in_file_and_folder_names_is_kept_nowhere(
    site,
    admin_user,
    default_worker,
    tmp_path,
    data_dir,
    staging,
    caplog,
):
    caplog.set_level(logging.DEBUG)
    client = APIClient()
    client.force_authenticate(admin_user)
    answers: list[bytes] = []
    root = tmp_path / "export"
    good, ct, archive = _export(root)

    # REST: two batches, a submit, then the status, the report pages and the list.
    created = _post(
        client, f"/api/sites/{site.slug}/uploads/", [good], root, finish="false", source="web"
    )
    upload_id = created.json()["id"]
    added = _post(client, f"/api/uploads/{upload_id}/files/", [ct, archive], root)
    submitted = client.post(f"/api/uploads/{upload_id}/submit/")
    answers += [created.content, added.content, submitted.content]

    def finished() -> bool:
        return client.get(f"/api/uploads/{upload_id}/").json()["status"] == "done"

    wait_for(finished, timeout_s=90, what=f"upload {upload_id}")
    page = client.get(f"/api/uploads/{upload_id}/files/", {"limit": 2})
    answers.append(page.content)
    while page.json()["next"]:
        page = client.get(page.json()["next"])
        answers.append(page.content)
    answers += [
        client.get(f"/api/uploads/{upload_id}/").content,
        client.get("/api/uploads/").content,
    ]
    client.force_login(admin_user)
    answers += [client.get("/uploads/").content, client.get(f"/uploads/{upload_id}/").content]

    # An upload left open expires with its staged files.
    left_open = _post(
        client, f"/api/sites/{site.slug}/uploads/", [good, archive], root, finish="false"
    )
    answers.append(left_open.content)
    assert upload_expire_stale(now=timezone.now() + timedelta(hours=25)) == 1
    answers.append(client.get(f"/api/uploads/{left_open.json()['id']}/").content)

    # The CLI, from a folder with the same names.
    cli = manage("ingest", str(root), "--site", "cli", "--create-site", "--json", data_dir=data_dir)
    assert cli.returncode == 1, cli.stderr  # the CT file and the bad ZIP entry are rejected

    # What happened is there, by position...
    lines = UploadFile.objects.filter(upload_id=upload_id)
    assert sorted((f.label, f.outcome) for f in lines) == [
        ("#1", "accepted"),
        ("#2", "rejected"),
        ("#3/1", "accepted"),
        ("#3/2", "rejected"),
    ]
    assert Image.objects.count() == 4  # two per site
    assert Upload.objects.filter(status="expired").count() == 1
    assert all(len(f.name_hash) == 64 and f.name == "" for f in UploadFile.objects.all())

    # ... and the names are nowhere.
    database = _everything_in_the_database()
    files = _every_file(data_dir, staging)
    assert any(p.name.startswith("worker-") for p, _ in files)  # the worker's log is read too
    for planted in PLANTED:
        assert planted not in database, planted
        for path, content in files:
            assert planted not in str(path), path
            assert planted.encode() not in content, path
        assert planted not in caplog.text, planted
        assert planted not in cli.stderr, planted
        for answer in answers:
            assert planted.encode() not in answer, answer[:300]
    assert not [p for p, _ in files if p.is_relative_to(staging) and p.is_file()]


# --- A file planted with sentinels wherever a file can hold text --------------------------------
# Every planted text holds TOKEN and a label naming where it was planted; a name is planted as
# DOE^JANE (a PN's components) too. Numbers, dates, times and UIDs that the table removes or
# replaces are planted as values of their own. None may survive in a stored byte outside the
# Pixel Data value, in any of the encodings a reader could find it in.
TOKEN = "ZQX"
NAME_FORMS = ("DOE^JANE", "JANE^DOE", "JANE DOE", "DOE, JANE")
NUMBER, DATE, TIME = "8675309", "18880808", "105959.867530"
UID_ROOT = f"1.2.826.0.{NUMBER}."
# Dates the age is computed from, and what the age checks read: planted elsewhere.
_NOT_PLANTED = {
    "PatientBirthDate",
    "StudyDate",
    "AcquisitionDate",
    "PatientAge",
    "PatientSex",
    "SOPClassUID",
}


def _text(label: str) -> str:
    return f"{TOKEN}{label}"


def _binary(label: str) -> bytes:
    """Text inside a binary value: ASCII, a name, and UTF-16 in both byte orders."""
    text = _text(label)
    value = f"{text} DOE^JANE ".encode() + text.encode("utf-16-le") + text.encode("utf-16-be")
    return value + b"\0" * (len(value) % 2)


def _planted_value(tag: int, vr: str, label: str, n: int):
    if vr in ("OB", "OW", "UN", "OB or OW", "OW or OB", "OD", "OF", "OL", "OV"):
        return _binary(label)
    return {
        "AE": _text(label)[:16],
        "CS": _text(label)[:16],
        "SH": _text(label)[:16],
        "LO": f"{_text(label)} DOE^JANE",
        "LT": f"{_text(label)} lives with DOE^JANE",
        "ST": f"{_text(label)} DOE^JANE",
        "UT": f"{_text(label)} DOE^JANE",
        "UC": f"{_text(label)} DOE^JANE",
        "PN": f"{_text(label)}^JANE^DOE",
        "UR": f"http://{_text(label).lower()}.example/DOE^JANE",
        "UI": f"{UID_ROOT}{n}",
        "DA": DATE,
        "DT": f"{DATE}101010",
        "TM": TIME,
        "DS": NUMBER,
        "IS": NUMBER,
    }.get(vr)


def _item(label: str, depth: int) -> Dataset:
    """A sequence item full of sentinels: table elements, a private block, an unknown tag, a
    wrongly typed group length, a retired element, an overlay, and (above the last level) a
    sequence the table keeps holding another such item."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
    item.OperatorsName = f"{_text(label + 'OP')}^JANE^DOE"
    item.InstitutionName = _text(label + "INST")
    item.add_new(0x00080000, "LO", _text(label + "GL"))
    item.add_new(0x00080010, "SH", _text(label + "RET")[:16])
    item.add_new(0x00089999, "UN", _binary(label + "UNK"))
    item.add_new(0x60000022, "LO", _text(label + "OVL"))
    item.private_block(0x0011, _text(label + "CR"), create=True).add_new(
        0x01, "LO", _text(label + "PRIV")
    )
    item.add_new(0xFFFCFFFC, "OB", _binary(label + "PAD"))
    if depth > 0:
        item.AnatomicRegionModifierSequence = Sequence([_item(label + "N", depth - 1)])
    return item


def _planted_dataset(transfer_syntax: str) -> Dataset:
    """A valid child's chest DX (make_dicom's) planted with sentinels everywhere."""
    compressed = transfer_syntax == RLELossless
    with tempfile.TemporaryDirectory() as tmp:
        base = make_dicom(
            Path(tmp) / "base.dcm",
            transfer_syntax=RLELossless if compressed else ExplicitVRLittleEndian,
        )
        ds = pydicom.dcmread(base)
    for n, (tag, vr) in enumerate(_table_tags()):
        keyword = keyword_for_tag(tag)
        if keyword in _NOT_PLANTED or "Species" in keyword or "Breed" in keyword:
            continue
        if tag >> 16 == 0 and transfer_syntax == ExplicitVRBigEndian:
            continue  # pydicom reads a command group (0000) as little endian
        if vr == "SQ":
            ds.add_new(tag, "SQ", Sequence([_item(f"{tag:08X}S", 1)]))
        elif (value := _planted_value(tag, vr, f"{tag:08X}", n)) is not None:
            ds.add_new(tag, vr, value)
    ds.PatientName = "DOE^JANE"
    ds.PatientID = _text("PID")
    # A sequence the table keeps, its items cleaned three levels down.
    ds.AnatomicRegionSequence = Sequence([_item("NEST", 2)])
    # Private tags: text, binary, and a private sequence.
    block = ds.private_block(0x0009, _text("CREATOR"), create=True)
    block.add_new(0x01, "LO", _text("PRIVLO"))
    block.add_new(0x02, "OB", _binary("PRIVOB"))
    block.add_new(0x03, "UN", _binary("PRIVUN"))
    block.add_new(0x04, "SQ", Sequence([_item("PRIVSQ", 1)]))
    # Odd groups no element may use, the command and directory groups, unknown tags.
    if transfer_syntax != ExplicitVRBigEndian:
        ds.add_new(0x00000902, "LO", _text("COMMAND"))
        ds.add_new(0x00010010, "LO", _text("ODDGROUP"))
    ds.add_new(0x00041500, "CS", _text("DIRFILE"))
    ds.add_new(0x00089999, "LO", _text("UNKNOWN"))
    ds.add_new(0x00281999, "UN", _binary("UNKNOWNUN"))
    # A known tag written as UN (its text is decoded with the dictionary's VR).
    ds.add_new(0x00081040, "UN", f"{_text('DEPTUN')} DOE^JANE ".encode())
    # Group lengths (a wrong VR hides text in one), retired elements the table does not list.
    ds.add_new(0x00080000, "LO", _text("GROUPLEN"))
    ds.add_new(0x00100000, "UL", 1234)
    ds.add_new(0x00080010, "SH", _text("RECOGNITION")[:16])
    ds.add_new(0x00080041, "LO", _text("SUBTYPE"))
    ds.add_new(0x00205002, "LO", _text("NOMENCLATURE"))
    # Curves and overlays with text.
    ds.add_new(0x50002500, "LO", _text("CURVELABEL"))
    ds.add_new(0x50003000, "OB", _binary("CURVEDATA"))
    for element, vr, value in (
        (0x0010, "US", 8),
        (0x0011, "US", 8),
        (0x0022, "LO", _text("OVERLAYDESC")),
        (0x0040, "CS", "G"),
        (0x0050, "SS", [1, 1]),
        (0x0100, "US", 1),
        (0x0102, "US", 0),
        (0x1500, "LO", _text("OVERLAYLABEL")),
        (0x3000, "OW", _binary("OVERLAYDATA")[:8]),
    ):
        ds.add_new(0x60000000 | element, vr, value)
    # Free text and binary values the table does not list: a document's title, a text value, a
    # URL, a colour profile, a waveform, a code's long meaning.
    ds.add_new(0x00420010, "ST", f"{_text('DOCTITLE')} DOE^JANE")
    ds.add_new(0x0040A160, "UT", f"{_text('TEXTVALUE')} DOE^JANE")
    ds.add_new(0x00287FE0, "UR", f"http://{_text('PROVIDER').lower()}.example/DOE^JANE")
    ds.add_new(0x00282000, "OB", _binary("ICCPROFILE"))
    waveform = Dataset()
    waveform.NumberOfWaveformChannels, waveform.WaveformBitsAllocated = 1, 8
    waveform.add_new(0x54001010, "OB", _binary("WAVEFORM"))
    ds.WaveformSequence = Sequence([waveform])
    ds.AnatomicRegionSequence[0].add_new(0x00080119, "UT", f"{_text('LONGMEANING')} DOE^JANE")
    # Names and dates the table does not list: a reviewer's name, an update time, a review date.
    ds.add_new(0x00140104, "PN", f"{_text('REVIEWER')}^JANE^DOE")
    ds.add_new(0x0008041F, "DT", f"{DATE}101010")
    ds.AnatomicRegionSequence[0].add_new(0x00140102, "DA", DATE)
    # Instance UIDs the table does not list: the original instance's, as a source.
    ds.SOPInstanceUIDOfConcatenationSource = f"{UID_ROOT}242"
    ds.MultiFrameSourceSOPInstanceUID = f"{UID_ROOT}1167"
    ds.TableFrameOfReferenceUID = "1.2.840.10008.1.4.1.1"  # a well-known one: it stays
    # An icon image whose pixels spell a name.
    icon = Dataset()
    icon.Rows, icon.Columns, icon.SamplesPerPixel, icon.BitsAllocated = 4, 8, 1, 8
    icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 7, 0
    icon.PhotometricInterpretation = "MONOCHROME2"
    icon.PixelData = _binary("ICON")[:32].ljust(32, b"\0")
    ds.IconImageSequence = Sequence([icon])
    # After the Pixel Data: a signature and the trailing padding.
    signature = Dataset()
    signature.add_new(0x04000105, "DT", f"{DATE}101010")
    signature.add_new(0x04000120, "OB", _binary("SIGNATURE"))
    ds.DigitalSignaturesSequence = Sequence([signature])
    ds.DataSetTrailingPadding = _binary("TRAILING")
    return ds


def _table_tags() -> list[tuple[int, str]]:
    """Every tag of deid's table with the VR it is planted in ("LO" for those pydicom does not
    know; the first of an ambiguous VR)."""
    tags = []
    for tag in sorted(deid._EXACT):
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "LO"
        tags.append((tag, vr.split(" or ")[0]))
    return tags


def _file_meta(transfer_syntax: str, ds: Dataset) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\0\1"
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = f"{UID_ROOT}0"
    meta.ImplementationVersionName = _text("IVN")[:16]
    meta.SourceApplicationEntityTitle = _text("SRCAE")
    meta.SendingApplicationEntityTitle = _text("SENDAE")
    meta.ReceivingApplicationEntityTitle = _text("RECVAE")
    meta.add_new(0x00020026, "UR", f"http://{_text('SRCADDR').lower()}.example/")
    meta.add_new(0x00020031, "OB", _binary("RTVSOURCE"))
    meta.PrivateInformationCreatorUID = f"{UID_ROOT}1"
    meta.PrivateInformation = _binary("PRIVINFO")
    return meta


def _write_planted(path: Path, transfer_syntax: str) -> bytes:
    """Preamble, File Meta Information and data set written byte by byte as planted (pydicom's
    file writer would refuse or fix some of them); returns the file's bytes before deflating."""
    ds = _planted_dataset(transfer_syntax)
    big = transfer_syntax == ExplicitVRBigEndian
    if big:  # OW pixels are written as they are: swap them here
        ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
    body = DicomBytesIO()
    body.is_little_endian = not big
    body.is_implicit_VR = transfer_syntax == ImplicitVRLittleEndian
    write_dataset(body, ds)
    data = plain = body.getvalue()
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        data = deflater.compress(data) + deflater.flush()
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, _file_meta(transfer_syntax, ds), enforce_standard=True)
    preamble = (b"DOE^JANE " + _binary("PREAMBLE")).ljust(128, b"\0")[:128]
    path.write_bytes(preamble + b"DICM" + meta.getvalue() + data)
    return preamble + b"DICM" + meta.getvalue() + plain


def _outside_pixel_data(stored: Path) -> bytes:
    """Every byte of a stored file except its Pixel Data value (found where it lies)."""
    data = stored.read_bytes()
    ds = pydicom.dcmread(stored, defer_size=256)
    pixels = ds.get_item(PIXEL_DATA, keep_deferred=True)
    start = pixels.value_tell
    length = len(ds.PixelData) if pixels.length == 0xFFFFFFFF else pixels.length
    assert data[start : start + len(ds.PixelData)] == ds.PixelData
    assert data[:128] == bytes(128), "the preamble is not 128 zero bytes"
    return data[:start] + data[start + length :]


def _survivors(text: str) -> list[str]:
    """Each sentinel found in `text` (case-insensitive), with a few characters after it."""
    found = []
    for sentinel in (TOKEN, *NAME_FORMS, NUMBER, DATE, TIME, UID_ROOT):
        for match in re.finditer(re.escape(sentinel), text, re.IGNORECASE):
            found.append(text[match.start() : match.start() + len(sentinel) + 14])
    return found


def _sentinels_in(data: bytes) -> list[str]:
    """Sentinels in bytes read as ASCII (Latin-1: one character a byte) and as UTF-16."""
    found = _survivors(data.decode("latin-1"))
    for codec in ("utf-16-le", "utf-16-be"):
        for offset in (0, 1):
            chunk = data[offset:]
            found += _survivors(chunk[: len(chunk) - len(chunk) % 2].decode(codec, "replace"))
    return found


@pytest.mark.parametrize(
    "transfer_syntax",
    [
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        RLELossless,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    ],
)
def test_no_sentinel_survives_in_any_stored_byte_outside_the_pixel_data(
    site, tmp_path, data_dir, transfer_syntax
):
    planted = tmp_path / "planted.dcm"
    raw = _write_planted(planted, transfer_syntax)
    # The test plants what it says: sentinels everywhere in the file as planted.
    assert raw[:8] == b"DOE^JANE"
    assert len(_sentinels_in(raw)) > 2000

    upload = upload_create(site=site, source=Upload.Source.CLI)
    upload = upload_process(upload=upload, sources=[Source.given(planted)])
    line = UploadFile.objects.get(upload=upload)
    assert line.outcome == "accepted", line.reason

    stored = data_dir / Image.objects.get().file
    assert _sentinels_in(_outside_pixel_data(stored)) == []
    assert _survivors(_everything_in_the_database()) == []
    # What the model needs is still there, and the pixels are the planted file's.
    ds = pydicom.dcmread(stored)
    np.testing.assert_array_equal(ds.pixel_array, pydicom.dcmread(planted).pixel_array)
    assert (ds.Modality, ds.PatientSex, ds.ViewPosition) == ("DX", "F", "PA")
    assert ds.AnatomicRegionSequence[0].CodeMeaning == "Chest"
    assert ds.TableFrameOfReferenceUID == "1.2.840.10008.1.4.1.1"


def test_a_real_films_tiff_header_in_the_preamble_is_not_stored(site, tmp_path, data_dir):
    """pydicom-data's chest CR keeps a TIFF header (with its offsets and tags) in its preamble,
    as films from some modalities do; the stored file's preamble is zeros all the same."""
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    ds.PatientBirthDate, ds.StudyDate, ds.PatientSex = "20150310", "20200115", "F"
    ds.BodyPartExamined = "CHEST"
    sent = tmp_path / "rg1.dcm"
    ds.save_as(sent)
    assert sent.read_bytes()[:4] == b"II*\0"  # the TIFF header, kept as it came

    upload = upload_process(
        upload=upload_create(site=site, source=Upload.Source.CLI), sources=[Source.given(sent)]
    )

    line = UploadFile.objects.get(upload=upload)
    assert line.outcome == "accepted", line.reason
    stored = (data_dir / Image.objects.get().file).read_bytes()
    assert stored[:132] == bytes(128) + b"DICM"


# --- Text inside a compressed frame's codestream ----------------------------------------------
# Comment and application segments (JPEG, JPEG-LS: COM, APPn with EXIF's names or a thumbnail;
# JPEG 2000: COM) hold whatever the sender wrote, and no decoder needs them.
CODESTREAM_TEXT = _binary("CODESTREAM")


def _ingest_one(site, sent: Path, data_dir: Path) -> bytes:
    """The stored bytes of `sent`, which must be accepted."""
    upload = upload_process(
        upload=upload_create(site=site, source=Upload.Source.CLI), sources=[Source.given(sent)]
    )
    line = UploadFile.objects.get(upload=upload)
    assert line.outcome == "accepted", line.reason
    return (data_dir / Image.objects.get().file).read_bytes()


def _jpeg_with_text(frame: bytes) -> bytes:
    """A COM and an EXIF APP1 segment after SOI, and another COM right before the first scan."""
    com = b"\xff\xfe" + (len(CODESTREAM_TEXT) + 2).to_bytes(2, "big") + CODESTREAM_TEXT
    exif = b"Exif\0\0" + CODESTREAM_TEXT
    app1 = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
    scan = frame.index(b"\xff\xda")
    return frame[:2] + com + app1 + frame[2:scan] + com + frame[scan:]


def _j2k_with_text(frame: bytes) -> bytes:
    """A COM segment after SIZ in the main header and one in the first tile-part's header."""
    com = b"\xff\x64" + (len(CODESTREAM_TEXT) + 4).to_bytes(2, "big") + b"\0\1" + CODESTREAM_TEXT
    after_siz = 4 + int.from_bytes(frame[4:6], "big")
    sot = frame.index(b"\xff\x90", after_siz)
    header_end = sot + 2 + int.from_bytes(frame[sot + 2 : sot + 4], "big")
    psot = int.from_bytes(frame[sot + 6 : sot + 10], "big")
    psot += len(com) if psot else 0  # 0: the last tile-part, to EOC
    tile = frame[sot : sot + 6] + psot.to_bytes(4, "big") + frame[sot + 10 : header_end]
    return frame[:after_siz] + com + frame[after_siz:sot] + tile + com + frame[header_end:]


def _baseline_jpeg_film(path: Path) -> Path:
    """An 8-bit JPEG baseline film (Pillow's, with its JFIF APP0), as a child's chest DX."""
    rows = cols = 256
    yy, xx = np.mgrid[0:rows, 0:cols]
    pixels = (30 + 180 * np.exp(-((yy - 128) ** 2 + (xx - 128) ** 2) / 9000)).astype(np.uint8)
    ds = pydicom.dcmread(make_dicom(path, rows=rows, cols=cols, bits_stored=8, pixels=pixels))
    jpeg = io.BytesIO()
    PILImage.fromarray(pixels).save(jpeg, format="JPEG", quality=90)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([jpeg.getvalue()])
    ds.save_as(path)
    return path


@pytest.mark.parametrize(
    "source",
    [
        "baseline",  # JPEG Baseline (Process 1)
        "JPGExtended.dcm",  # JPEG Extended (Process 2 and 4), 12 bits
        "JPEG-LL.dcm",  # JPEG Lossless, first-order prediction, 16 bits
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless
        "MR_small_jp2klossless.dcm",  # JPEG 2000 Lossless
        "693_J2KI.dcm",  # JPEG 2000, lossy
    ],
)
def test_no_text_in_a_codestreams_segments_survives_and_the_pixels_stay_exact(
    site, tmp_path, data_dir, source
):
    sent = tmp_path / "sent.dcm"
    if source == "baseline":
        ds = pydicom.dcmread(_baseline_jpeg_film(tmp_path / "film.dcm"))
    else:  # a real file's codestream, the file made a child's chest DX
        ds = pydicom.dcmread(get_testdata_file(source))
        ds.Modality, ds.BodyPartExamined, ds.PatientSex = "DX", "CHEST", "F"
        ds.PatientBirthDate, ds.StudyDate = BIRTH_DATE, STUDY_DATE
    original = ds.pixel_array.copy()
    ts = ds.file_meta.TransferSyntaxUID
    frame = b"".join(next(generate_fragmented_frames(ds.PixelData, number_of_frames=1)))
    planted = _j2k_with_text(frame) if ts in JPEG2000_SYNTAXES else _jpeg_with_text(frame)
    ds.PixelData = encapsulate([planted])
    ds.save_as(sent)
    # The test plants what it says, in a file that still decodes to its pixels.
    assert sent.read_bytes().count(CODESTREAM_TEXT) == (2 if ts in JPEG2000_SYNTAXES else 3)
    np.testing.assert_array_equal(pydicom.dcmread(sent).pixel_array, original)

    stored = _ingest_one(site, sent, data_dir)

    found = [s for s in (_text("CODESTREAM"), *NAME_FORMS) if s.encode() in stored]
    assert found == [], "text of the codestream's segments was stored"
    for codec in ("utf-16-le", "utf-16-be"):
        assert _text("CODESTREAM").encode(codec) not in stored
    stored_ds = pydicom.dcmread(io.BytesIO(stored))
    assert stored_ds.file_meta.TransferSyntaxUID == ts  # the sender's encoding, kept
    np.testing.assert_array_equal(stored_ds.pixel_array, original)


def test_no_text_in_an_rle_headers_unused_offsets_survives(site, tmp_path, data_dir):
    sent = make_dicom(tmp_path / "film.dcm", rows=128, cols=128, transfer_syntax=RLELossless)
    ds = pydicom.dcmread(sent)
    original = ds.pixel_array.copy()
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    used = 4 + 4 * int.from_bytes(frame[:4], "little")  # two segments of 16-bit pixels
    text = f"{_text('RLEHEADER')} DOE^JANE".encode().ljust(64 - used, b" ")
    ds.PixelData = encapsulate([frame[:used] + text + frame[64:]])
    ds.save_as(sent)
    np.testing.assert_array_equal(pydicom.dcmread(sent).pixel_array, original)
    assert b"DOE^JANE" in sent.read_bytes()

    stored = _ingest_one(site, sent, data_dir)

    assert b"DOE^JANE" not in stored
    assert _text("RLEHEADER").encode() not in stored
    np.testing.assert_array_equal(pydicom.dcmread(io.BytesIO(stored)).pixel_array, original)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_bits_above_bits_stored_are_stored_as_read(site, tmp_path, data_dir, syntax, signed):
    """A retired embedded overlay (or anything) in the bits above BitsStored: every reader masks
    them off (or takes them as the sign), so they are stored so, and the pixels read alike."""
    rows = cols = 128
    yy, xx = np.mgrid[0:rows, 0:cols]
    values = (1500 * np.exp(-((yy - 64) ** 2 + (xx - 64) ** 2) / 2000)).astype(np.int32)
    values = values - 700 if signed else values + 100  # 12 bits, signed or not
    text = np.frombuffer(f"{_text('HIGHBITS')} DOE^JANE ".encode() * 500, np.uint8)
    hidden = np.resize(text, rows * cols).reshape(rows, cols).astype(np.uint16) >> 4 << 12
    sent = make_dicom(
        tmp_path / "film.dcm",
        rows=rows,
        cols=cols,
        pixels=((values.astype(np.uint16) & 0x0FFF) | hidden).astype(np.uint16),
    )
    ds = pydicom.dcmread(sent)
    ds.PixelRepresentation = int(signed)
    original = ds.pixel_array.copy()
    np.testing.assert_array_equal(original, values)  # the junk is not what a reader sees
    if syntax == ExplicitVRBigEndian:
        ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
        ds.file_meta.TransferSyntaxUID = syntax
        pydicom.dcmwrite(sent, ds, little_endian=False, implicit_vr=False, force_encoding=True)
    else:
        ds.save_as(sent)
    order = ">" if syntax == ExplicitVRBigEndian else "<"
    assert (np.frombuffer(pydicom.dcmread(sent).PixelData, f"{order}u2") >> 12).any()

    stored = pydicom.dcmread(io.BytesIO(_ingest_one(site, sent, data_dir)))

    kind = "i2" if signed else "u2"
    raw = np.frombuffer(stored.PixelData, f"{order}{kind}").reshape(rows, cols)
    np.testing.assert_array_equal(raw, values)  # the bits above as read: zero, or the sign
    np.testing.assert_array_equal(stored.pixel_array, original)


# --- pydicom's warnings (they quote the file's path) reach no output of any process -------------
SENTINEL_DIR = "ZQXPATH_DOE^JANE"


def _truncated_and_odd(folder: Path) -> dict[str, str]:
    """Files pydicom warns about, naming the path it read ("End of file reached before
    delimiter (FFFE,E0DD) found in file PATH"), with the reason each is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, syntax in (("plain", ExplicitVRLittleEndian), ("rle", RLELossless)):
        whole = make_dicom(folder / f"{name}.dcm", rows=128, cols=128, transfer_syntax=syntax)
        data = whole.read_bytes()
        whole.unlink()
        for percent in (40, 90):
            (folder / f"{name}-{percent}.dcm").write_bytes(data[: len(data) * percent // 100])
            expected[f"{name}-{percent}.dcm"] = "truncated file"
        (folder / f"{name}-header.dcm").write_bytes(data[:300])  # inside the file meta
        expected[f"{name}-header.dcm"] = "truncated file"
    # A data set in explicit VR behind a header that says implicit: pydicom warns, reads it.
    odd = make_dicom(folder / "odd.dcm", rows=64, cols=64)
    odd.write_bytes(
        odd.read_bytes().replace(b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.1.2\0\0\0", 1)
    )
    return expected


def _refused_for_their_reasons(lines: list[tuple[str, str]], expected: dict[str, str]) -> None:
    """Each expected file's line is a refusal whose reason says why (by name, from the CLI)."""
    reasons = dict(lines)
    for name, reason in expected.items():
        assert reason in reasons[name], (name, reasons[name])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_pydicom_warnings_reach_no_output_of_the_cli_or_its_ingest_processes(
    tmp_path, data_dir, monkeypatch, workers
):
    """The CLI reads an uncompressed file itself and a compressed one in an ingest worker
    process; with two workers and PARALLEL_MIN_FILES 1, every file goes to the pool."""
    folder = tmp_path / SENTINEL_DIR / "films"
    expected = _truncated_and_odd(folder)
    monkeypatch.setenv("PORTAL_INGEST_WORKERS", workers)
    monkeypatch.setenv("PORTAL_INGEST_PARALLEL_MIN_FILES", "1")
    monkeypatch.setenv("PORTAL_LOG_LEVEL", "DEBUG")  # even at DEBUG

    cli = manage("ingest", str(folder), "--site", "north", "--create-site", data_dir=data_dir)

    output = cli.stdout + cli.stderr
    assert cli.returncode == 1, output
    lines = re.findall(r"^rejected (\S+) \(#\d+\): (.*)$", cli.stderr, re.MULTILINE)
    _refused_for_their_reasons(lines, expected)
    for leak in ("ZQXPATH", "DOE^JANE", str(tmp_path), "End of file", "UserWarning"):
        assert leak not in output, (leak, output[-3000:])


def test_pydicom_warnings_reach_no_celery_worker_log(
    settings, site, admin_user, start_worker, tmp_path, data_dir
):
    """Uploads through the API, staged under a folder named like a patient, processed by a real
    worker that reads files itself (one ingest process) and by one that hands them to its pool."""
    staging = tmp_path / SENTINEL_DIR / "staging"
    settings.STAGING_DIR = staging
    folder = tmp_path / "films"
    expected = _truncated_and_odd(folder)
    paths = sorted(folder.iterdir())
    client = APIClient()
    client.force_authenticate(admin_user)
    for name, workers in (("serial", "1"), ("pooled", "2")):
        env = {"PORTAL_STAGING_DIR": str(staging), "PORTAL_INGEST_WORKERS": workers}
        worker = start_worker("default", name, pool="threads", env=env)
        created = _post(client, f"/api/sites/{site.slug}/uploads/", paths, folder)
        upload_id = created.json()["id"]

        def finished(upload_id: int = upload_id) -> bool:
            return client.get(f"/api/uploads/{upload_id}/").json()["status"] == "done"

        wait_for(finished, timeout_s=120, what=f"upload {upload_id}")
        worker.stop()

        lines = UploadFile.objects.filter(upload_id=upload_id).order_by("index")
        _refused_for_their_reasons(
            [(path.name, line.reason) for path, line in zip(paths, lines, strict=True)], expected
        )
        log = worker.log.read_text(errors="replace")
        assert "ready." in log  # the worker's own output is what is read
        for leak in ("ZQXPATH", "DOE^JANE", str(staging), "End of file", "UserWarning"):
            assert leak not in log, (leak, log[-3000:])


def test_pydicom_warnings_reach_no_output_of_a_django_process(tmp_path, data_dir):
    """Every process that loads the settings (the web server is `manage.py serve_web`) reads
    DICOM quietly: here as a validation import checks a file's pixels, in the web process."""
    folder = tmp_path / SENTINEL_DIR / "import"
    _truncated_and_odd(folder)
    code = (
        "from pathlib import Path\n"
        "from portal.validation.exports import pixel_sha256\n"
        f"for path in sorted(Path({str(folder)!r}).iterdir()):\n"
        "    try:\n"
        "        pixel_sha256(path)\n"
        "    except Exception as exc:\n"
        "        print('refused', type(exc).__name__)\n"
        "print('checked')\n"
    )
    result = manage("shell", "-c", code, data_dir=data_dir)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "checked" in result.stdout, output
    assert "refused" in result.stdout  # the truncated files were read, and failed
    for leak in ("ZQXPATH", "DOE^JANE", str(tmp_path), "End of file", "UserWarning"):
        assert leak not in output, (leak, output[-3000:])
