"""`get(ds, keyword)`: `ds.get(keyword)`, the same value, for a fraction of its cost.

Ingest reads some twenty attributes of each file (the checks, the age, the acquisition's
description), most of them once. pydicom's `ds.get` converts an element as read through its
hooks, its value converters and validation, then replaces it in the data set: 10 to 20 µs an
attribute, a tenth of a worker's time on a small film. Most of these attributes are a short
unsigned number or a single value of plain text, whose value is the bytes as read: decoded
here, where that is certain to give pydicom's value, and left to pydicom otherwise (several
values, a character set that could matter, another VR, an empty value).
`tests/portal/ingest/test_elements.py` holds both to the same value and type on every real file.
"""

from functools import cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

# Text whose bytes are characters of the default repertoire only (PS3.5 6.1.2.3), decoded as
# such by pydicom whatever the character set; and text that a character set applies to, whose
# bytes are still its characters when they are all ASCII with no escape sequence (every
# repertoire DICOM names keeps ASCII as it is). pydicom strips the trailing padding of both.
_PLAIN_TEXT_VRS = frozenset({"AS", "CS", "DA"})
_TEXT_VRS = frozenset({"SH", "LO"})
_SLOW = object()


@cache
def _tag(keyword: str) -> tuple[int, str]:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"not a DICOM keyword: {keyword}")
    return tag, dictionary_VR(tag)


def get(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """The value of the standard attribute `keyword` in `ds` (file meta attributes in
    `ds.file_meta`), as `ds.get(keyword, default)` gives it."""
    tag, dictionary_vr = _tag(keyword)
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return default
    if isinstance(elem, RawDataElement):
        fast = _raw_value(elem, elem.VR or dictionary_vr)
        return ds.get(keyword, default) if fast is _SLOW else fast
    return elem.value


def _raw_value(elem: RawDataElement, vr: str) -> Any:
    raw = elem.value
    if not raw:  # empty, or not read yet (a large value, deferred)
        return _SLOW
    if vr == "US" and len(raw) == 2:
        return int.from_bytes(raw, "little" if elem.is_little_endian else "big")
    if b"\\" in raw:  # several values
        return _SLOW
    if vr in _PLAIN_TEXT_VRS or (vr in _TEXT_VRS and raw.isascii() and b"\x1b" not in raw):
        return raw.decode("latin-1").rstrip(" \x00")
    return _SLOW
