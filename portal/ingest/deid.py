"""De-identification on ingest: DICOM PS3.15 Annex E, Basic Application Level Confidentiality
Profile, driven by the standard's Table E.1-1 as the `dicom-anonymizer` package ships it
(its 2026c edition), with these options:

- Retain Longitudinal Temporal Information, Modified Dates: every DA/DT value, whether the table
  lists it or not, is shifted by a per-patient offset, so intervals survive and calendar dates
  do not; the birth date is removed.
- Retain Patient Characteristics, partly: PatientSex is kept and PatientAge is rewritten from the
  age computed before de-identification.
- UIDs are remapped with a keyed hash of the site's secret (consistent within a site, different
  across sites), instance UIDs the table does not list too (`_instance_uid`); patient IDs
  become per-site pseudonyms; private tags, curves and overlays go.

Attributes outside the table (pixel spacing, photometric interpretation, view position,
manufacturer, ...) are kept: the standard treats them as safe and the model needs them. Except
what no image needs and a file can hide text in, which goes whatever the table says nothing of
(`_removed`): tags of odd groups (private, and the groups no element may use), the command,
file meta and directory groups (0000 to 0006) inside the data set, group lengths, curves and
overlays, retired attributes and tags pydicom's dictionary does not know, names (PN), free
text (LT, ST, UT, UC, UR) and binary values (OB, OW, OF, OD, OL, OV, UN) but the pixels and LUT
data, and everything after the Pixel Data (trailing padding, signatures). The File Meta
Information is made afresh (`_file_meta`); the preamble is written as zeros (`prepare`, the one
writer of stored files).
Inside the Pixel Data, what no reader decodes is cleared (`dicom.clean_pixel_data`): a
compressed frame's comment and application segments, native pixels' bits above BitsStored; the
pixels decode exactly as they were sent.
"""

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table
from pydicom.datadict import dictionary_is_retired, dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from portal.ingest.dicom import clean_pixel_data, elements, format_patient_age, parse_date
from portal.ingest.outcomes import Deidentified

TABLE_EDITION = "PS3.15 2026c Table E.1-1"
METHOD = (
    f"CXR-Age Portal: {TABLE_EDITION} Basic Profile; Retain Longitudinal Temporal Information "
    "Modified Dates; Retain Patient Characteristics (sex, age)"
)
# CID 7050 codes for the profile and the options applied.
METHOD_CODES = [
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
]
MAX_DATE_SHIFT_DAYS = 3650


def _action_table() -> tuple[dict[int, str], list[tuple[int, int, int, int, str]]]:
    """Map each tag to one action; combined actions resolve to the strictest (X > Z > D)."""
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    groups = {
        "D_TAGS": "D",
        "Z_TAGS": "Z",
        "X_TAGS": "X",
        "U_TAGS": "U",
        "Z_D_TAGS": "Z",
        "X_Z_TAGS": "X",
        "X_D_TAGS": "X",
        "X_Z_D_TAGS": "X",
        "X_Z_U_STAR_TAGS": "X",
    }
    for name, action in groups.items():
        for entry in getattr(table, name):
            if len(entry) == 2:
                exact[(entry[0] << 16) | entry[1]] = action
            else:
                group, element, group_mask, element_mask = entry
                masked.append((group, element, group_mask, element_mask, action))
    return exact, masked


_EXACT, _MASKED = _action_table()
# Kept or rewritten by the options above rather than by the table's action.
# Plain ints, as `_apply` compares them.
_PATIENT_SEX, _PATIENT_AGE = 0x00100040, 0x00101010
_BIRTH_DATE = 0x00100030
_PIXEL_DATA = 0x7FE00010


def table_action(tag: int) -> str | None:
    """The table's action for `tag` (a plain int or a pydicom Tag), None where it names none."""
    tag = int(tag)
    if (action := _EXACT.get(tag)) is not None:
        return action
    group, element = tag >> 16, tag & 0xFFFF
    for masked_group, masked_element, group_mask, element_mask, action in _MASKED:
        if (group & group_mask) == masked_group and (element & element_mask) == masked_element:
            return action
    return None


@dataclass(frozen=True)
class Pseudonyms:
    """Keyed hashes of one site: identifiers map consistently within the site, and only there."""

    key: bytes

    def _digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self.key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        # 2.25 root: a UUID-derived UID (PS3.5 B.2), 128 bits from the keyed hash.
        return "2.25." + str(int.from_bytes(self._digest("uid", original.strip())[:16], "big"))

    def patient(self, original_id: str) -> str:
        return "P" + self._digest("patient", original_id.strip()).hex()[:15].upper()

    def date_shift_days(self, original_id: str) -> int:
        raw = int.from_bytes(self._digest("date", original_id.strip())[:4], "big")
        return -(1 + raw % MAX_DATE_SHIFT_DAYS)


def deidentify(ds: Dataset, *, pseudonyms: Pseudonyms, age_days: int) -> Deidentified:
    """Rewrite `ds` in place so that no identifier in Table E.1-1 survives."""
    patient_key = str(elements.get(ds, "PatientID") or "").strip() or str(
        ds.get("StudyInstanceUID", "")
    )
    pseudonym = pseudonyms.patient(patient_key)
    shift = dt.timedelta(days=pseudonyms.date_shift_days(patient_key))

    _apply(ds, _element_rule(pseudonyms, shift))

    ds.PatientID = pseudonym
    ds.PatientName = pseudonym
    ds.PatientAge = format_patient_age(age_days)
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = METHOD[:64]
    ds.DeidentificationMethodCodeSequence = Sequence(_method_code_items())
    ds.file_meta = _file_meta(ds)
    clean_pixel_data(ds, ds.file_meta.get("TransferSyntaxUID"))
    return Deidentified(
        sop_instance_uid=str(ds.SOPInstanceUID),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        patient_pseudonym=pseudonym,
    )


def _file_meta(ds: Dataset) -> FileMetaDataset:
    """A File Meta Information of the transfer syntax and the SOP's UIDs alone: the writer adds
    the version and its own implementation UID and name. Everything else a sender put there
    (its AE titles and addresses, its implementation's name, private information) goes."""
    meta = FileMetaDataset()
    original = getattr(ds, "file_meta", None)
    if original is not None and elements.get(original, "TransferSyntaxUID"):
        meta.TransferSyntaxUID = original.TransferSyntaxUID
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return meta


# What `_apply` does with an element by its tag alone, remembered per tag (a file has a hundred,
# and most files the same ones), up to a bound. Keyed by plain ints: a pydicom Tag compares in
# Python, an int in C.
_REMOVED, _KEPT, _READ = "removed", "kept", "read"
_by_tag: dict[int, str] = {}


def _tag_step(tag: int) -> str:
    """`_REMOVED`: the element goes unread (`_removed`, or the table's X); `_KEPT`: the options
    keep it as it is (sex, age); `_READ`: the rest, which `_apply` looks at."""
    step = _by_tag.get(tag)
    if step is None:
        if tag in (_PATIENT_SEX, _PATIENT_AGE):
            step = _KEPT
        elif _removed(tag) or (table_action(tag) == "X" and tag != _BIRTH_DATE):
            step = _REMOVED
        else:
            step = _READ
        if len(_by_tag) < 16384:
            _by_tag[tag] = step
    return step


# Beyond the table, a person's name, values of free text of any length and binary values hold
# whatever a sender wrote (a reviewer's name, a document's title, a waveform, a colour profile,
# a URL with an identifier), and no radiograph the portal takes needs one but its pixels and a
# LUT's data.
_FREE_VRS = frozenset(
    {"PN", "LT", "ST", "UT", "UC", "UR", "OB", "OW", "OF", "OD", "OL", "OV", "UN"}
)
_NEEDED_FREE = frozenset({_PIXEL_DATA, 0x00283006})  # Pixel Data, LUT Data


def _removed(tag: int) -> bool:
    """Whether an element goes whatever the table says (see the module's docstring), or, of
    those the table does not list, is a name, free text or binary: none of these is needed to
    read or use an image, and each can carry text no rule looks at."""
    group, element = tag >> 16, tag & 0xFFFF
    if (
        group % 2 == 1  # private tags, and the odd groups no element may use
        or group < 0x0008  # command, file meta and directory elements in the data set
        or element == 0  # group lengths (retired, PS3.5 7.2), whatever their VR says
        or group & 0xFF00 in (0x5000, 0x6000)  # curves and overlays
        or tag > _PIXEL_DATA  # trailing padding, signatures
    ):
        return True
    if table_action(tag) is not None:
        return False
    try:
        retired = dictionary_is_retired(tag)
        free = not _FREE_VRS.isdisjoint(dictionary_VR(tag).split(" or "))
    except KeyError:
        return True  # not in the dictionary: nothing says what it holds
    return retired or (free and tag not in _NEEDED_FREE)


Rule = Callable[[Dataset, DataElement], None]


def _element_rule(pseudonyms: Pseudonyms, shift: dt.timedelta) -> Rule:
    def rule(dataset: Dataset, elem: DataElement) -> None:
        tag = elem.tag
        if int(tag) == _BIRTH_DATE:
            elem.value = ""
            return
        action = table_action(tag)
        if elem.VR in ("DA", "DT") and action != "X":  # every date, listed or not
            elem.value = _shift(elem.value, shift, elem.VR)
        elif action is None:
            if elem.VR == "UI" and _instance_uid(int(tag)):
                elem.value = _map_uids(elem.value, pseudonyms, keep_standard=True)
            return
        elif action == "U" and elem.VR == "UI":
            elem.value = _map_uids(elem.value, pseudonyms)
        elif action == "X":
            del dataset[tag]
        elif action == "Z" or elem.VR == "SQ":
            elem.value = Sequence() if elem.VR == "SQ" else ""
        else:  # D: a dummy value of the right VR
            elem.value = _dummy(elem.VR)

    return rule


def _apply(ds: Dataset, rule: Rule) -> None:
    """Apply `rule` to every element that it can change, depth first, so that sequences are
    cleaned too.

    Elements are looked at as read (raw) and decoded only when the rule acts on them or they
    may hold a sequence: decoding every value of a file costs more than the rest of the
    de-identification, and an element the rule leaves alone is written back byte for byte."""
    for tag in list(ds.keys()):
        number = int(tag)
        step = _tag_step(number)
        if step == _REMOVED:
            # Private tags go (no Retain Safe Private option); so do curves and overlays,
            # which can carry burned-in text, the rest of `_removed`, and the table's X, with
            # whatever they hold: nothing in them needs reading.
            del ds[tag]
            continue
        if step == _KEPT:  # by the options above
            continue
        action = table_action(number)
        birth_date = number == _BIRTH_DATE
        raw = ds.get_item(tag, keep_deferred=True)
        if action is None and not birth_date and not _must_decode(raw):
            continue
        if action in ("Z", "D") and not birth_date and raw.VR not in _READ_BEFORE_REPLACED:
            # The rule replaces the whole value, whatever it was: a new element, with the VR
            # the file gave, instead of decoding the one read only to drop it.
            ds[tag] = DataElement(tag, raw.VR, "" if action == "Z" else _dummy(raw.VR))
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value or []:
                _apply(item, rule)
        rule(ds, elem)


# VRs whose value the rule reads even when it replaces it (dates are shifted, sequences' items
# cleaned), or that only decoding makes known (implicit VR: none in the file; UN of a known tag).
_READ_BEFORE_REPLACED = frozenset({None, "UN", "SQ", "DA", "DT"})


def _must_decode(elem: DataElement | RawDataElement) -> bool:
    """Whether an element the table leaves alone is decoded all the same: a sequence (its
    items are cleaned) or a date (shifted), or one that may decode to either (implicit VR: no
    VR in the file), and UN of a tag the dictionary knows, which pydicom decodes (and the file
    keeps) with the dictionary's VR."""
    if elem.VR not in (None, "UN"):
        return elem.VR in _DECODED_UNLISTED or (elem.VR == "UI" and _instance_uid(int(elem.tag)))
    try:
        known = dictionary_VR(elem.tag)
    except KeyError:
        return elem.VR is None  # an unknown tag in implicit VR: decoded, as pydicom would
    return elem.VR == "UN" or known in _DECODED_UNLISTED or _instance_uid(int(elem.tag))


_DECODED_UNLISTED = frozenset({"SQ", "DA", "DT"})
# UIDs the table does not list that name a kind (a SOP class, a transfer syntax, a coding
# scheme, a context) are kept; any other (a multi-frame source's or a concatenation source's
# instance, a frame of reference, an assertion) may be an original instance's UID, and is mapped.
_KIND_UIDS = ("Class", "Classes", "TransferSyntax", "CodingScheme", "Context", "MappingResource")


@cache
def _instance_uid(tag: int) -> bool:
    """Whether a UI element the table does not list is mapped as the table's U elements are."""
    try:
        if dictionary_VR(tag) != "UI" or table_action(tag) is not None:
            return False
    except KeyError:
        return False
    return not any(kind in keyword_for_tag(tag) for kind in _KIND_UIDS)


def _map_uids(value: object, pseudonyms: Pseudonyms, *, keep_standard: bool = False) -> object:
    """Each UID mapped; with `keep_standard`, the standard's own (root 1.2.840.10008: a
    well-known frame of reference, a class) are not instances and stay."""

    def mapped(uid: str) -> str:
        if not uid.strip() or (keep_standard and uid.strip().startswith("1.2.840.10008.")):
            return uid
        return pseudonyms.uid(uid)

    if isinstance(value, MultiValue | list):
        return [mapped(str(v)) for v in value]
    return mapped(str(value))


def _shift(value: object, shift: dt.timedelta, vr: str) -> str:
    text = str(value or "").strip()
    day = parse_date(text)
    if day is None:
        return ""  # unparseable dates are dropped, never kept as they were
    shifted = (day + shift).strftime("%Y%m%d")
    return shifted + text[8:] if vr == "DT" else shifted


_DUMMIES = {
    "PN": "ANONYMIZED",
    "LO": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "AE": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "TM": "000000.00",
    "DA": "19000101",
    "DT": "19000101000000",
    "UI": "2.25.0",
    "IS": "0",
    "DS": "0",
    "UL": 0,
    "US": 0,
    "SL": 0,
    "SS": 0,
    "FL": 0.0,
    "FD": 0.0,
}


def _dummy(vr: str) -> object:
    return _DUMMIES.get(vr, b"" if vr in ("OB", "OW", "UN") else "")


@cache
def _method_code_items() -> tuple[Dataset, ...]:
    """The items of every de-identified file's method code sequence, made once per process
    (three data sets a file cost 50 us) and shared by the files' sequences, which only write
    them: nothing changes them."""
    return tuple(_code(value, meaning) for value, meaning in METHOD_CODES)


def _code(value: str, meaning: str) -> Dataset:
    # CodeValue, CodingSchemeDesignator, CodeMeaning with their dictionary VRs, added without
    # the keyword lookups of attribute assignment.
    item = Dataset()
    item.add_new(0x00080100, "SH", value)
    item.add_new(0x00080102, "SH", "DCM")
    item.add_new(0x00080104, "LO", meaning)
    return item
