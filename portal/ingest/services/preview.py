"""The viewer's quick first render of a film (`dicom.preview`): made from the stored,
de-identified file the first time it is asked for, then kept under `previews/` in the data
folder. A derived cache: nothing records it, losing it costs one render, and it holds the
film's pixels only (no tag value), as the DICOM file the viewer loads next does."""

import os
import tempfile
from pathlib import Path

import pydicom
from django.conf import settings

from portal.core.files import data_folder
from portal.ingest.dicom.preview import J2K_PREVIEW_PIXELS, render_preview
from portal.ingest.models import Image

# A new rendering rule gets a new folder, so that no preview of the old rule is served.
PREVIEW_FOLDER = "previews/v1"


class PreviewUnavailable(Exception):
    """The stored file is missing or its pixels cannot be rendered here."""


def image_preview_path(*, image: Image) -> str:
    """Where the preview of `image` is kept, relative to the data folder."""
    return f"{PREVIEW_FOLDER}/{image.uuid}.jpg"


def image_preview_ensure(*, image: Image) -> str:
    """The preview of `image`, rendered now if it is not kept yet; its relative path."""
    relative = image_preview_path(image=image)
    target = settings.DATA_DIR / relative
    if target.is_file():
        return relative
    source = settings.DATA_DIR / image.file
    try:
        ds = pydicom.dcmread(source)
        jpeg = render_preview(ds, j2k_pixels=J2K_PREVIEW_PIXELS)
    except Exception as exc:
        raise PreviewUnavailable(type(exc).__name__) from exc
    folder = data_folder(PREVIEW_FOLDER)
    # Written aside and renamed: a reader never sees half a file, two writers race harmlessly.
    fd, tmp = tempfile.mkstemp(prefix=".preview-", suffix=".jpg", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(jpeg)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return relative
