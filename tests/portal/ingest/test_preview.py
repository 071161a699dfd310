"""The viewer's quick low-resolution rendition of a film (issue 17, item 5): rendered from the
stored file as the viewer first shows it (the file's window, MONOCHROME1 inverted, the physical
aspect), a JPEG 2000 film from a reduced-resolution decode that matches the full one, kept once
made, served under the DICOM file's permissions and on the record."""

import io
import time

import numpy as np
import pydicom
import pytest
from django.conf import settings
from PIL import Image as PILImage
from pydicom.data import get_testdata_file

from portal.accounts.models import AuditEvent
from portal.ingest.dicom.preview import J2K_PREVIEW_PIXELS, PREVIEW_PIXELS, render_preview
from portal.ingest.services.preview import (
    PreviewUnavailable,
    image_preview_ensure,
    image_preview_path,
)
from tests.dicom_files import PHI, make_dicom
from tests.portal import factories as f


def _grey(jpeg: bytes) -> np.ndarray:
    image = PILImage.open(io.BytesIO(jpeg))
    assert (image.format, image.mode) == ("JPEG", "L")
    return np.asarray(image, dtype=float)


@pytest.mark.parametrize("film", ["RG1", "RG3"])
def test_a_jpeg2000_film_previews_as_its_uncompressed_twin(film):
    """The reduced-resolution JPEG 2000 decode (a lower resolution level) gives the picture the
    full decode gives, and fast; MONOCHROME1 comes out with bone bright."""
    j2k = pydicom.dcmread(get_testdata_file(f"{film}_J2KR.dcm"))
    plain = pydicom.dcmread(get_testdata_file(f"{film}_UNCR.dcm"))
    started = time.perf_counter()
    fast = _grey(render_preview(j2k, j2k_pixels=J2K_PREVIEW_PIXELS))
    elapsed = time.perf_counter() - started
    full = _grey(render_preview(plain))
    assert 200 <= max(fast.shape) <= max(full.shape) <= PREVIEW_PIXELS
    assert fast.shape[0] / fast.shape[1] == pytest.approx(full.shape[0] / full.shape[1], rel=0.02)
    same_size = PILImage.fromarray(full.astype(np.uint8)).resize(
        fast.shape[::-1], PILImage.BILINEAR
    )
    difference = np.abs(fast - np.asarray(same_size, dtype=float))
    assert difference.mean() < 6, difference.mean()
    assert elapsed < 2, elapsed  # a generous bound: about 0.05 s here; a full decode is 0.5 s
    if film == "RG1":  # the PA chest: mediastinum (mid-width) brighter than both lungs
        band = fast[int(fast.shape[0] * 0.35) : int(fast.shape[0] * 0.55)]
        w = fast.shape[1]
        lungs = [band[:, int(w * x) - 10 : int(w * x) + 10].mean() for x in (0.3, 0.7)]
        assert band[:, int(w * 0.47) : int(w * 0.53)].mean() > max(lungs) + 15


def _ramp(tmp_path, name: str, **kwargs) -> pydicom.Dataset:
    # Left dark, right bright.
    pixels = np.tile(np.linspace(0, 4000, 200).astype(np.uint16), (100, 1))
    return pydicom.dcmread(make_dicom(tmp_path / name, rows=100, cols=200, pixels=pixels, **kwargs))


def test_the_file_window_and_photometry_decide_the_grey_levels(tmp_path):
    windowed = _ramp(tmp_path, "w.dcm", extra={"WindowCenter": 2000, "WindowWidth": 1000})
    grey = _grey(render_preview(windowed))
    assert grey.shape == (100, 200)  # square pixels; a small film is not enlarged
    row = grey[40]
    # Values up to 1500 are black, from 2500 white: the left and right quarters of the ramp.
    assert row[:60].max() < 12, row[:60]
    assert row[-60:].min() > 243, row[-60:]
    assert 90 < row[100] < 165, row[100]

    inverted = _grey(render_preview(_ramp(tmp_path, "m1.dcm", photometric="MONOCHROME1")))
    plain = _grey(render_preview(_ramp(tmp_path, "m2.dcm")))
    # Without a window, the stored range; MONOCHROME1 is its negative.
    assert plain[40, :5].mean() < 10
    assert plain[40, -5:].mean() > 245
    assert np.abs((255 - inverted) - plain).mean() < 3


def test_the_preview_keeps_the_physical_aspect_and_no_tag_value(tmp_path):
    ds = _ramp(tmp_path, "a.dcm", extra={"PixelSpacing": [0.3, 0.15]})  # rows twice as far apart
    jpeg = render_preview(ds)
    assert _grey(jpeg).shape == (200, 200)  # 100 x 0.3 mm high, 200 x 0.15 mm wide
    for value in PHI.values():
        assert value.encode() not in jpeg


@pytest.mark.django_db
def test_a_preview_is_rendered_once_then_kept(tmp_path):
    site = f.site("north")
    image = f.image(site, dicom=True)
    relative = image_preview_ensure(image=image)
    assert relative == image_preview_path(image=image)
    kept = settings.DATA_DIR / relative
    first = kept.stat().st_mtime_ns
    (settings.DATA_DIR / image.file).unlink()  # from now on, only the kept one can answer
    assert image_preview_ensure(image=image) == relative
    assert kept.stat().st_mtime_ns == first
    other = f.image(site)  # a row without its file
    with pytest.raises(PreviewUnavailable):
        image_preview_ensure(image=other)


@pytest.mark.django_db
def test_the_preview_endpoint_serves_a_jpeg_on_the_record_and_404_without_a_film(client):
    site, elsewhere = f.site("north"), f.site("south")
    user = f.user("rita", "reviewer", site)
    image, missing, foreign = (
        f.image(site, dicom=True),
        f.image(site),
        f.image(elsewhere, dicom=True),
    )
    client.force_login(user)
    response = client.get(f"/api/images/{image.pk}/preview/")
    assert (response.status_code, response["Content-Type"]) == (200, "image/jpeg")
    assert _grey(b"".join(response.streaming_content)).shape == (96, 80)
    assert AuditEvent.objects.filter(action="image.preview", image_id=image.pk).count() == 1
    assert client.get(f"/api/images/{missing.pk}/preview/").status_code == 404
    assert client.get(f"/api/images/{foreign.pk}/preview/").status_code == 404  # another site
