"""DICOMweb (PS3.18) over the portal's images: QIDO-RS searches and WADO-RS retrieval within
the caller's sites (STOW-RS is `stow`). The views (`views`) are thin.

Every UID a DICOMweb client sees is the stored, de-identified one: the study, series and
instance UIDs remapped per site at ingest, and the patient's pseudonym as PatientID."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.tag import Tag
from pydicom.uid import ImplicitVRLittleEndian

from portal.accounts.selectors import site_scope
from portal.ingest.dicom.preview import render_preview
from portal.ingest.models import Image

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class DicomWebError(Exception):
    """A request DICOMweb refuses: `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- QIDO-RS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribute:
    """A searchable or returned attribute: its tag, VR and where the portal keeps it."""

    keyword: str
    column: str  # the Image column (an annotation at the study and series levels)

    @property
    def tag(self) -> str:
        return f"{tag_for_keyword(self.keyword):08X}"

    @property
    def vr(self) -> str:
        return dictionary_VR(self.keyword)


STUDY = "study"
SERIES = "series"
INSTANCE = "instance"
# What each level matches on and returns from the database (PS3.18 Table 10.6.3-3 to -5, of
# what the portal stores); anything else an instance returns comes from its file's header.
LEVEL_ATTRIBUTES: dict[str, tuple[Attribute, ...]] = {
    STUDY: (
        Attribute("StudyInstanceUID", "study_instance_uid"),
        Attribute("PatientID", "patient_pseudonym"),
        Attribute("PatientName", "patient_pseudonym"),
        Attribute("PatientSex", "sex"),
        Attribute("ModalitiesInStudy", "modality"),
    ),
    SERIES: (
        Attribute("StudyInstanceUID", "study_instance_uid"),
        Attribute("SeriesInstanceUID", "series_instance_uid"),
        Attribute("Modality", "modality"),
    ),
    INSTANCE: (
        Attribute("StudyInstanceUID", "study_instance_uid"),
        Attribute("SeriesInstanceUID", "series_instance_uid"),
        Attribute("SOPInstanceUID", "sop_instance_uid"),
        Attribute("Modality", "modality"),
        Attribute("Rows", "rows"),
        Attribute("Columns", "columns"),
        Attribute("PhotometricInterpretation", "photometric_interpretation"),
        Attribute("BitsStored", "bits_stored"),
    ),
}
# Matching keys of the levels above, usable at a level below (a series search by study).
_INHERITED = {SERIES: STUDY, INSTANCE: SERIES}
_COUNTS = {
    STUDY: ("NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
    SERIES: ("NumberOfSeriesRelatedInstances",),
}


def image_scope(*, user) -> QuerySet[Image]:
    """The images of the caller's sites (any role): another site's study is not found."""
    return Image.objects.filter(site_scope(user=user))


def _attribute(level: str, key: str) -> Attribute | None:
    """The attribute `key` (a keyword or eight hex digits) names at `level` or above."""
    key = _keyword(key) or key
    while level:
        for attribute in LEVEL_ATTRIBUTES[level]:
            if attribute.keyword == key:
                return attribute
        level = _INHERITED.get(level, "")
    return None


@dataclass
class Search:
    """A QIDO-RS query, parsed: matching keys, the extra fields asked for, a page."""

    level: str
    filters: Q = field(default_factory=Q)
    include: list[str] = field(default_factory=list)  # keywords asked for by includefield
    include_all: bool = False
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    ignored: list[str] = field(default_factory=list)  # keys the portal cannot match on


def parse_search(level: str, params: Iterable[tuple[str, str]], **path: str) -> Search:
    """The query parameters of a search at `level` (`path`: UIDs from the URL)."""
    search = Search(level=level)
    pairs = list(path.items()) + list(params)
    for key, value in pairs:
        if key in ("limit", "offset"):
            try:
                number = int(value)
            except ValueError as exc:
                raise DicomWebError(400, f"{key} must be a whole number") from exc
            if number < 0:
                raise DicomWebError(400, f"{key} must not be negative")
            setattr(search, key, min(number, MAX_LIMIT) if key == "limit" else number)
        elif key == "includefield":
            for name in value.split(","):
                name = name.strip()
                if name == "all":
                    search.include_all = True
                elif name:
                    keyword = _keyword(name)
                    if keyword is None:
                        raise DicomWebError(400, f"includefield {name!r} is not an attribute")
                    search.include.append(keyword)
        elif key in ("fuzzymatching", "_"):
            continue
        else:
            attribute = _attribute(level, key)
            if attribute is None:
                search.ignored.append(key)
                continue
            search.filters &= _match(attribute, value)
    return search


def _keyword(name: str) -> str | None:
    """The keyword of a keyword or eight hex digits (a tag); None for neither."""
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        return keyword_for_tag(Tag(int(name, 16))) or None
    return name if tag_for_keyword(name) is not None else None


def _match(attribute: Attribute, value: str) -> Q:
    """Single value, UID list (backslash or comma separated) or wildcard matching (PS3.4
    C.2.2.2); a PatientSex of M, F or O as stored."""
    column = attribute.column
    if attribute.vr == "UI":
        uids = [u.strip() for u in value.replace(",", "\\").split("\\") if u.strip()]
        return Q(**{f"{column}__in": uids})
    if "*" in value or "?" in value:
        pattern = "".join(
            ".*" if ch == "*" else "." if ch == "?" else "\\" + ch if not ch.isalnum() else ch
            for ch in value
        )
        return Q(**{f"{column}__regex": f"^{pattern}$"})
    if attribute.vr in ("US", "UL", "IS"):
        try:
            return Q(**{column: int(value)})
        except ValueError as exc:
            raise DicomWebError(400, f"{attribute.keyword} must be a number") from exc
    return Q(**{column: value})


def search(*, user, query: Search, base_url: str) -> list[dict]:
    """The DICOM JSON results of a search, one page of them, in a stable order."""
    images = image_scope(user=user).filter(query.filters)
    if query.level == INSTANCE:
        page = images.order_by("study_instance_uid", "series_instance_uid", "id")
        rows = list(page[query.offset : query.offset + query.limit])
        return [_instance_json(image, query, base_url) for image in rows]
    key = "study_instance_uid" if query.level == STUDY else "series_instance_uid"
    groups = (
        images.order_by()
        .values(key)
        .annotate(
            study_instance_uid_=Max("study_instance_uid"),
            patient_pseudonym=Max("patient_pseudonym"),
            sex=Max("sex"),
            modality=Max("modality"),
            first_id=Min("id"),
            series_count=Count("series_instance_uid", distinct=True),
            instance_count=Count("id"),
        )
    )
    rows = list(groups.order_by(key)[query.offset : query.offset + query.limit])
    modalities = _modalities(images, [r[key] for r in rows], key) if query.level == STUDY else {}
    return [_group_json(query, row, key, modalities.get(row[key], []), base_url) for row in rows]


def _modalities(images: QuerySet[Image], keys: list[str], column: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    pairs = images.filter(**{f"{column}__in": keys}).values_list(column, "modality").distinct()
    for key, modality in pairs.order_by(column, "modality"):
        found.setdefault(key, []).append(modality)
    return found


def element(keyword: str, value: object) -> dict:
    """One DICOM JSON attribute (PS3.18 F.2) from a plain value (a list for several)."""
    vr = dictionary_VR(keyword)
    values = value if isinstance(value, list) else [value]
    values = [v for v in values if v not in (None, "")]
    if not values:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(v)} for v in values]}
    if vr in ("US", "UL", "SS", "SL", "IS"):
        return {"vr": vr, "Value": [int(v) for v in values]}
    return {"vr": vr, "Value": [str(v) for v in values]}


def _put(result: dict, keyword: str, value: object) -> None:
    result[f"{tag_for_keyword(keyword):08X}"] = element(keyword, value)


def study_url(base_url: str, study: str) -> str:
    return f"{base_url}/studies/{study}"


def _group_json(query: Search, row: dict, key: str, modalities: list[str], base: str) -> dict:
    result: dict = {}
    study = row["study_instance_uid_"]
    _put(result, "StudyInstanceUID", study)
    if query.level == STUDY:
        _put(result, "PatientID", row["patient_pseudonym"])
        _put(result, "PatientName", row["patient_pseudonym"])
        _put(result, "PatientSex", row["sex"])
        _put(result, "ModalitiesInStudy", modalities)
        _put(result, "NumberOfStudyRelatedSeries", row["series_count"])
        _put(result, "NumberOfStudyRelatedInstances", row["instance_count"])
        _put(result, "RetrieveURL", study_url(base, study))
    else:
        series = row["series_instance_uid"]
        _put(result, "SeriesInstanceUID", series)
        _put(result, "Modality", row["modality"])
        _put(result, "NumberOfSeriesRelatedInstances", row["instance_count"])
        _put(result, "RetrieveURL", f"{study_url(base, study)}/series/{series}")
    return dict(sorted(result.items()))


def instance_url(base_url: str, image: Image) -> str:
    return base_url.removesuffix("/dicomweb") + image.wado_rs_path


def _instance_json(image: Image, query: Search, base_url: str) -> dict:
    result: dict = {}
    for attribute in LEVEL_ATTRIBUTES[INSTANCE]:
        _put(result, attribute.keyword, getattr(image, attribute.column))
    try:
        header = read_header(image)
    except (DicomWebError, OSError):  # a search still lists what the database knows
        header = Dataset()
    _put(result, "SOPClassUID", str(header.get("SOPClassUID", "")))
    if query.include_all:
        result.update(
            {
                k: v
                for k, v in header_json(header).items()
                if k not in result and v.get("vr") != "SQ"
            }
        )
    for keyword in query.include:
        tag = f"{tag_for_keyword(keyword):08X}"
        if tag not in result:
            single = Dataset()
            if keyword in header:
                single.add(header[keyword])
            result[tag] = header_json(single).get(tag, {"vr": dictionary_VR(keyword)})
    _put(result, "RetrieveURL", instance_url(base_url, image))
    return dict(sorted(result.items()))


# -- WADO-RS ---------------------------------------------------------------------------------


def instances(*, user, study: str, series: str | None = None, sop: str | None = None):
    """The caller's images of a study (a series, an instance), in order; 404 when none."""
    images = image_scope(user=user).filter(study_instance_uid=study)
    if series is not None:
        images = images.filter(series_instance_uid=series)
    if sop is not None:
        images = images.filter(sop_instance_uid=sop)
    found = list(images.order_by("series_instance_uid", "id"))
    if not found:
        raise DicomWebError(404, "no such study, series or instance among your sites' images")
    return found


def stored_path(image: Image) -> Path:
    path = (settings.DATA_DIR / image.file).resolve()
    if not path.is_relative_to(settings.DATA_DIR.resolve()) or not path.is_file():
        raise DicomWebError(404, "the stored file is missing")
    return path


def read_header(image: Image) -> Dataset:
    return pydicom.dcmread(stored_path(image), stop_before_pixels=True)


def header_json(ds: Dataset) -> dict:
    """The data set as DICOM JSON without its bulk data (pixels, overlays, large binaries)."""
    return ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=lambda _e: "")


def metadata(images: list[Image]) -> list[dict]:
    out = []
    for image in images:
        data = header_json(read_header(image))
        for tag in [t for t, v in data.items() if v.get("BulkDataURI") == ""]:
            del data[tag]  # a client asks for bulk data through /frames
        out.append(data)
    return out


def file_chunks(path: Path, size: int = 1024 * 1024) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"


def accepted_syntaxes(accept: str) -> set[str]:
    """The transfer syntaxes an Accept header names for frames (`transfer-syntax=` of each
    media range; `*` for any). None named: the default, Explicit VR Little Endian."""
    found = set()
    for media_range in accept.split(","):
        for param in media_range.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "transfer-syntax":
                found.add(value.strip().strip('"'))
    return found or {EXPLICIT_LITTLE}


def frame(image: Image, number: int, syntaxes: set[str]) -> tuple[bytes, str]:
    """Frame `number` (a radiograph has only frame 1) and its transfer syntax: as stored when
    the client takes that syntax (`*`: any), a compressed one's codestream untouched; else
    decoded, uncompressed little endian."""
    if number != 1:
        raise DicomWebError(404, f"frame {number} does not exist (a radiograph has one frame)")
    ds = pydicom.dcmread(stored_path(image))
    stored = str(ds.file_meta.TransferSyntaxUID)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated and ("*" in syntaxes or stored in syntaxes):
        return next(generate_frames(ds.PixelData, number_of_frames=1)), stored
    if not ({"*", EXPLICIT_LITTLE, ImplicitVRLittleEndian} & syntaxes):
        raise DicomWebError(
            406, "frames are served as stored or uncompressed (1.2.840.10008.1.2.1)"
        )
    pixels = ds.pixel_array
    little = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    return little.tobytes(), EXPLICIT_LITTLE


def rendered(image: Image, media_type: str) -> bytes:
    """The film as it first shows in the viewer (the file's window, MONOCHROME1 inverted), at
    its own size, as PNG or JPEG."""
    ds = pydicom.dcmread(stored_path(image))
    size = max(image.rows, image.columns)
    return render_preview(ds, size, "PNG" if media_type == "image/png" else "JPEG")
