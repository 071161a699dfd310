"""`prepare` writes what pydicom would write, only faster: the head of every stored file (all
but the pixel data) is byte for byte pydicom's `dcmwrite`, and the pixel data is read once."""

import copy
import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files

from portal.ingest import dicom
from portal.ingest import prepare as prepare_module
from portal.ingest.deid import Pseudonyms, deidentify, table_action
from portal.ingest.dicom import Limits, read_dataset_from
from portal.ingest.prepare import PIXEL_DATA, Prepared, prepare
from tests.dicom_files import make_dicom

CORPUS = sorted(Path(p) for p in get_testdata_files() if Path(p).is_file())
CORPUS_CT = Path(get_testdata_files("CT_small.dcm")[0])


def _deidentified(path: Path) -> pydicom.Dataset | None:
    """`path` read and de-identified as `prepare` does, without its pixel data and what
    follows it; None where `prepare` would not get that far or writes through pydicom."""
    try:
        with warnings.catch_warnings(), path.open("rb") as fh:
            warnings.simplefilter("ignore")
            ds = read_dataset_from(fh, size=path.stat().st_size)
            deidentify(ds, pseudonyms=Pseudonyms(key=b"k" * 32), age_days=1000)
            prepare_module._complete_file_meta(ds)
    except Exception:
        return None
    ts = ds.file_meta.TransferSyntaxUID
    if not ts.is_little_endian or ts.is_deflated:
        return None  # written by pydicom's dcmwrite itself
    for tag in [t for t in ds.keys() if t >= PIXEL_DATA]:  # noqa: SIM118
        del ds[tag]
    return ds


def test_the_head_of_every_real_file_is_written_as_pydicom_writes_it():
    compared = 0
    for path in CORPUS:
        ds = _deidentified(path)
        if ds is None:
            continue
        expected = io.BytesIO()
        reference = copy.deepcopy(ds)
        reference.preamble = bytes(128)  # every stored file's, whatever the sender's was
        try:
            reference.save_as(expected, enforce_file_format=True)
        except Exception as exc:  # pydicom refuses it: so must the fast writer
            with pytest.raises(type(exc)):
                prepare_module._encode_head(
                    ds, implicit=ds.file_meta.TransferSyntaxUID.is_implicit_VR
                )
            continue
        head = prepare_module._encode_head(
            ds, implicit=ds.file_meta.TransferSyntaxUID.is_implicit_VR
        )
        assert head == expected.getvalue(), path.name
        compared += 1
    assert compared > 50


@pytest.mark.parametrize("bare_encoding", ["implicit", "explicit"])
def test_a_stored_file_decodes_to_the_pixels_sent(tmp_path, bare_encoding):
    sent = make_dicom(tmp_path / "a.dcm", preamble=False, bare_encoding=bare_encoding)
    out = tmp_path / "out"
    out.mkdir()
    result = prepare(str(sent), b"k" * 32, Limits(), str(out))
    assert isinstance(result, Prepared)
    stored = pydicom.dcmread(result.tmp_path)
    assert stored.PixelData == pydicom.dcmread(sent, force=True).PixelData
    assert stored.PatientIdentityRemoved == "YES"


def test_pixel_data_is_read_from_the_open_file_once(tmp_path, monkeypatch):
    """pydicom would open the file again to read a deferred value; `prepare` reads it from
    the handle it parsed the header from."""
    sent = make_dicom(tmp_path / "a.dcm", rows=512, cols=512)
    reopened = []
    original = pydicom.filereader.read_deferred_data_element
    monkeypatch.setattr(
        pydicom.filereader,
        "read_deferred_data_element",
        lambda *a, **k: reopened.append(a) or original(*a, **k),
    )
    out = tmp_path / "out"
    out.mkdir()
    assert isinstance(prepare(str(sent), b"k" * 32, Limits(), str(out)), Prepared)
    assert reopened == []


def test_the_de_identification_codes_are_encoded_once_per_process(tmp_path, monkeypatch):
    """The code sequence every de-identified file carries is encoded by pydicom once, then
    reused: pydicom writes a sequence through a data set per item, which costs as much as the
    rest of a small film's header."""
    out = tmp_path / "out"
    out.mkdir()
    written = []
    original = prepare_module.write_data_element
    monkeypatch.setattr(
        prepare_module,
        "write_data_element",
        lambda fp, elem, *a: written.append(elem.VR) or original(fp, elem, *a),
    )
    for i in range(3):
        sent = make_dicom(tmp_path / f"{i}.dcm", rows=128, cols=128, seed=i)
        assert isinstance(prepare(str(sent), b"k" * 32, Limits(), str(out)), Prepared)
    assert written.count("SQ") <= 1


def test_a_file_sent_as_bytes_is_stored_as_the_same_file_from_disk(tmp_path):
    """C-STORE and STOW-RS hand `prepare` the bytes they received, unwritten: what is stored
    must be byte for byte what the same file from disk gives."""
    sent = make_dicom(tmp_path / "a.dcm", rows=256, cols=256)
    outs = [tmp_path / "from-path", tmp_path / "from-bytes"]
    for out in outs:
        out.mkdir()
    from_path = prepare(str(sent), b"k" * 32, Limits(), str(outs[0]))
    from_bytes = prepare(sent.read_bytes(), b"k" * 32, Limits(), str(outs[1]))
    assert isinstance(from_path, Prepared)
    assert isinstance(from_bytes, Prepared)
    assert (from_bytes.sha256, from_bytes.size_bytes) == (from_path.sha256, from_path.size_bytes)
    assert Path(from_bytes.tmp_path).read_bytes() == Path(from_path.tmp_path).read_bytes()
    assert prepare(b"not dicom" * 100, b"k" * 32, Limits(), str(outs[1])).reason


def test_the_file_meta_is_read_from_the_first_bytes():
    """What STOW-RS names a part by, and whether a native codec may read it, from the File
    Meta Information alone; a value cut off by the end of the bytes is left out."""
    for path in CORPUS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = pydicom.dcmread(path, stop_before_pixels=True, force=True).file_meta
        head = path.read_bytes()[:4096]
        values = dicom.file_meta_values(head)
        if head[128:132] != b"DICM":
            assert values == {}
            assert not dicom.native_decoder_needed(head)
            continue
        for element, keyword in (
            (0x0002, "MediaStorageSOPClassUID"),
            (0x0003, "MediaStorageSOPInstanceUID"),
            (0x0010, "TransferSyntaxUID"),
        ):
            if element in values:
                assert values[element] == str(meta.get(keyword, "")).strip("\0 "), path.name
        ts = values.get(0x0010)
        assert dicom.native_decoder_needed(head) == (
            ts is None or ts not in dicom.NATIVE_FREE_SYNTAXES
        )
    whole = dicom.file_meta_values(CORPUS_CT.read_bytes())
    assert dicom.file_meta_values(CORPUS_CT.read_bytes()[:140]) == {}
    assert whole[0x0010] == str(pydicom.dcmread(CORPUS_CT).file_meta.TransferSyntaxUID)


# Patient's Sex and Age (kept by an option), Birth Date (emptied by its own rule).
_NOT_REPLACED_BY_THE_TABLE = {0x00100040, 0x00101010, 0x00100030}


def _decode_replaced(ds: pydicom.Dataset) -> None:
    """Decode the elements the table replaces whole (Z, D), in sequences too."""
    for tag in list(ds.keys()):
        replaced = table_action(tag) in ("Z", "D") and tag not in _NOT_REPLACED_BY_THE_TABLE
        elem = ds[tag] if replaced else ds.get_item(tag, keep_deferred=True)
        if elem.VR == "SQ":
            for item in ds[tag].value or []:
                _decode_replaced(item)


def _written_after_deidentify(path: Path, *, decode_first: bool) -> bytes | None:
    try:
        with warnings.catch_warnings(), path.open("rb") as fh:
            warnings.simplefilter("ignore")
            ds = read_dataset_from(fh, size=path.stat().st_size)
            if decode_first:
                _decode_replaced(ds)
            deidentify(ds, pseudonyms=Pseudonyms(key=b"k" * 32), age_days=1000)
            prepare_module._complete_file_meta(ds)
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
    except Exception:
        return None
    return out.getvalue()


def test_de_identification_writes_the_same_bytes_whether_elements_were_decoded_or_not():
    """Elements the table replaces whole (Z, D) are replaced as read, without decoding the
    value that goes; the file written is the one that decoding them first gives."""
    compared = 0
    for path in CORPUS:
        as_read = _written_after_deidentify(path, decode_first=False)
        if as_read is None:
            continue
        assert as_read == _written_after_deidentify(path, decode_first=True), path.name
        compared += 1
    assert compared > 150
