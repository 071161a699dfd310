"""/dicomweb/ with a real DICOMweb client (`dicomweb-client`) against the portal's own web
server (`serve_web`, which takes the chunked bodies such clients send): STOW-RS through the
ingest service, QIDO-RS and WADO-RS within the caller's sites."""

import io
from collections.abc import Iterator

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings
from django.contrib.auth import get_user_model
from PIL import Image as PILImage

from portal.accounts.models import Role
from portal.accounts.tokens import token_create
from portal.ingest.models import Image, Upload
from portal.pacs.multipart import new_boundary, write_parts
from portal.pacs.services import STATUS_DUPLICATE, STATUS_REFUSED
from tests.dicom_files import make_dicom
from tests.portal import factories
from tests.portal.core.test_webserver import serve_web
from tests.portal.pacs.conftest import real_film

REFERENCED, FAILED = "ReferencedSOPSequence", "FailedSOPSequence"


def _token(username: str) -> dict[str, str]:
    """The Authorization header of a new API token of `username`."""
    _, key = token_create(actor=None, user=get_user_model().objects.get(username=username))
    return {"Authorization": f"Token {key}"}


def _client(web: str, username: str) -> DICOMwebClient:
    session = requests.Session()
    session.headers.update(_token(username))
    return DICOMwebClient(url=f"{web}/dicomweb", session=session)


@pytest.fixture
def web(transactional_db, data_dir) -> Iterator[str]:
    """The portal's web server in a process of its own (`make test-fast` leaves its tests
    out: they are marked slow)."""
    with serve_web(data_dir, PORTAL_CLIENT_TIMEOUT_S="60") as url:
        yield url


@pytest.fixture
def stored(web, tmp_path):
    """Site north with an uploader and a reviewer; a STOW-RS of two children's films (one a
    real chest CR), the same CR again (a duplicate) and an adult's (refused)."""
    north = factories.site("north")
    factories.user("up", Role.UPLOADER, north)
    factories.user("reader", Role.REVIEWER, north)
    study = {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.77", "PatientID": "HOSP-123"}
    films = [
        real_film(tmp_path / "rg1.dcm", **study),
        make_dicom(tmp_path / "dx.dcm", rows=128, cols=96, extra=study),
        real_film(tmp_path / "rg1-again.dcm", **study),
        make_dicom(tmp_path / "adult.dcm", birth_date="19700101", extra=study),
    ]
    sent = [pydicom.dcmread(p) for p in films]
    answer = _client(web, "up").store_instances(sent)
    return north, sent, answer


@pytest.mark.slow
def test_stow_names_each_outcome_and_makes_one_upload(stored):
    north, sent, answer = stored
    referenced, failed = answer.get(REFERENCED, []), answer.get(FAILED, [])
    assert len(referenced) == 3
    assert [item.get("WarningReason") for item in referenced] == [None, None, STATUS_DUPLICATE]
    assert len(failed) == 1
    assert failed[0].ReferencedSOPInstanceUID == sent[3].SOPInstanceUID  # the sender's own UID
    assert failed[0].FailureReason == STATUS_REFUSED
    assert "out of scope (18 years or more)" in failed[0][0x0000, 0x0902].value
    # Stored under the de-identified UIDs, which the response gives back.
    stored_uids = set(Image.objects.filter(site=north).values_list("sop_instance_uid", flat=True))
    assert {item.ReferencedSOPInstanceUID for item in referenced} == stored_uids
    assert not stored_uids & {ds.SOPInstanceUID for ds in sent}
    upload = Upload.objects.get(site=north)
    assert (upload.source, upload.sender, upload.status) == ("dicomweb", "up", "done")
    assert (upload.accepted_count, upload.duplicate_count, upload.rejected_count) == (2, 1, 1)


@pytest.mark.slow
def test_qido_searches_the_callers_sites(stored, web):
    north, _sent, _answer = stored
    client = _client(web, "reader")
    studies = client.search_for_studies()
    assert len(studies) == 1
    study = pydicom.Dataset.from_json(studies[0])
    image = Image.objects.filter(site=north).first()
    assert study.StudyInstanceUID == image.study_instance_uid
    assert study.PatientID == image.patient_pseudonym
    assert study.NumberOfStudyRelatedInstances == 2
    assert sorted(study.ModalitiesInStudy) == sorted({"CR", "DX"})
    series = client.search_for_series(study.StudyInstanceUID)
    assert {pydicom.Dataset.from_json(s).Modality for s in series} == {"CR", "DX"}
    found = client.search_for_instances(search_filters={"PatientID": image.patient_pseudonym})
    assert len(found) == 2
    assert client.search_for_instances(search_filters={"PatientID": "HOSP-123"}) == []
    first = client.search_for_instances(limit=1, offset=0, fields=["BodyPartExamined"])
    second = client.search_for_instances(limit=1, offset=1)
    assert len(first) == len(second) == 1
    assert first[0]["00080018"] != second[0]["00080018"]
    assert "00180015" in first[0]  # includefield, read from the stored header
    assert client.search_for_studies(search_filters={"StudyInstanceUID": "1.2.3"}) == []


@pytest.mark.slow
def test_wado_returns_the_stored_files(stored, web):
    north, _sent, _answer = stored
    client = _client(web, "reader")
    image = Image.objects.filter(site=north, modality="CR").get()
    uids = (image.study_instance_uid, image.series_instance_uid, image.sop_instance_uid)
    instance = client.retrieve_instance(*uids)
    on_disk = pydicom.dcmread(settings.DATA_DIR / image.file)
    assert instance.SOPInstanceUID == image.sop_instance_uid
    assert instance.PixelData == on_disk.PixelData
    assert len(client.retrieve_study(image.study_instance_uid)) == 2
    metadata = client.retrieve_instance_metadata(*uids)
    assert metadata["00080018"]["Value"] == [image.sop_instance_uid]
    assert "7FE00010" not in metadata
    (frame,) = client.retrieve_instance_frames(*uids, frame_numbers=[1])
    pixels = np.frombuffer(frame, dtype="<u2").reshape(image.rows, image.columns)
    assert np.array_equal(pixels, on_disk.pixel_array)
    png = client.retrieve_instance_rendered(*uids, media_types=("image/png",))
    assert PILImage.open(io.BytesIO(png)).size == (image.columns, image.rows)
    jpeg = client.retrieve_instance_rendered(*uids)
    assert PILImage.open(io.BytesIO(jpeg)).format == "JPEG"


@pytest.mark.slow
def test_another_sites_user_sees_nothing(stored, web):
    north, _sent, _answer = stored
    south = factories.site("south")
    factories.user("stranger", Role.LEAD, south)
    client = _client(web, "stranger")
    assert client.search_for_studies() == []
    assert client.search_for_instances() == []
    image = Image.objects.filter(site=north).first()
    with pytest.raises(requests.HTTPError) as raised:
        client.retrieve_instance(
            image.study_instance_uid, image.series_instance_uid, image.sop_instance_uid
        )
    assert raised.value.response.status_code == 404
    anonymous = requests.get(f"{web}/dicomweb/studies", timeout=30)
    assert anonymous.status_code == 401


@pytest.mark.slow
def test_stow_refuses_what_it_cannot_store(stored, web, tmp_path):
    url = f"{web}/dicomweb/studies"
    auth = _token("reader")  # a reviewer may read, not store
    film = make_dicom(tmp_path / "x.dcm").read_bytes()
    boundary = new_boundary()
    body = b"".join(write_parts([("application/dicom", [film])], boundary))
    multipart = f'multipart/related; type="application/dicom"; boundary={boundary}'
    headers = {"Content-Type": multipart, **auth}
    assert requests.post(url, data=body, headers=headers, timeout=30).status_code == 403
    auth = _token("up")
    headers = {"Content-Type": multipart, **auth}
    wrong_type = requests.post(
        url, data=film, headers={"Content-Type": "application/dicom", **auth}, timeout=30
    )
    assert wrong_type.status_code == 415
    mixed = b"".join(
        write_parts([("text/plain", [b"hello"]), ("application/dicom", [film])], boundary)
    )
    answer = requests.post(url, data=mixed, headers=headers, timeout=30)
    assert answer.status_code == 202
    result = pydicom.Dataset.from_json(answer.json())
    assert len(result.ReferencedSOPSequence) == 1
    assert "not application/dicom" in result.FailedSOPSequence[0][0x0000, 0x0902].value


@pytest.mark.django_db
def test_basic_and_session_authentication(client):
    import base64

    north = factories.site("north")
    factories.user("reader", Role.REVIEWER, north)
    factories.image(north)
    basic = base64.b64encode(f"reader:{factories.PASSWORD}".encode()).decode()
    answer = client.get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Basic {basic}")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/dicom+json"
    assert len(answer.json()) == 1
    assert client.get("/dicomweb/studies").status_code == 401
    client.login(username="reader", password=factories.PASSWORD)
    assert len(client.get("/dicomweb/series").json()) == 1
    ignored = client.get("/dicomweb/studies?StudyDate=20200101&ReferringPhysicianName=X")
    assert ignored["Warning"].startswith('299 portal: "These matching keys were ignored')
    assert client.get("/dicomweb/instances?limit=-1").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_frames_as_stored_or_uncompressed(client, tmp_path):
    """Cornerstone asks for `transfer-syntax=*` and gets the JPEG 2000 codestream as stored;
    a client naming no syntax gets the decoded pixels."""
    from portal.ingest.services import Stream

    north = factories.site("north")
    factories.user("reader", Role.REVIEWER, north)
    stream = Stream(site=north, source=Upload.Source.CLI)
    stream.add(real_film(tmp_path / "j2k.dcm", "jpeg2000").read_bytes())
    stream.close()
    image = Image.objects.get(site=north)
    client.login(username="reader", password=factories.PASSWORD)
    url = (
        f"/dicomweb/studies/{image.study_instance_uid}/series/{image.series_instance_uid}"
        f"/instances/{image.sop_instance_uid}/frames/1"
    )
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    stored = client.get(url, HTTP_ACCEPT=accept)
    assert b"transfer-syntax=1.2.840.10008.1.2.4.90" in stored.content
    assert b"\r\n\r\n\xff\x4f\xff\x51" in stored.content  # SOC, SIZ: a JPEG 2000 codestream
    # The viewer's own request (Cornerstone's wadors loader: its Accept, type unquoted).
    viewer = client.get(
        url, HTTP_ACCEPT="multipart/related; type=application/octet-stream; transfer-syntax=*"
    )
    assert viewer.content == stored.content.replace(
        stored["Content-Type"].rpartition("boundary=")[2].encode(),
        viewer["Content-Type"].rpartition("boundary=")[2].encode(),
    )
    plain = client.get(url)
    assert b"transfer-syntax=1.2.840.10008.1.2.1\r\n" in plain.content
    assert len(plain.content) > image.rows * image.columns * 2
    refused = client.get(url, HTTP_ACCEPT=accept.replace("*", "1.2.840.10008.1.2.4.50"))
    assert refused.status_code == 406
