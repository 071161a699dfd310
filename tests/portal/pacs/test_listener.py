"""The DICOM receiver with real peers: dcmtk's echoscu and storescu, and pynetdicom as a
sender whose every response can be read; the listener is a real `manage.py dicom_listen`."""

import ipaddress
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless
from pynetdicom import AE

from portal.accounts.audit import AuditAction
from portal.accounts.models import AuditEvent
from portal.ingest.dicom import ACCEPTED_TRANSFER_SYNTAXES
from portal.ingest.models import Image, Upload, UploadFile
from portal.pacs import services
from tests.conftest import wait_for
from tests.dicom_files import make_dicom
from tests.peers import Orthanc, orthanc_binary
from tests.portal.pacs.conftest import real_film

# Each test starts a real listener process (and peers): `make test-fast` leaves them out.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("storescu") is None, reason="dcmtk (Debian package) is not installed"
    ),
]
CR = "1.2.840.10008.5.1.4.1.1.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def _dcmtk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_echo_and_association_refusals(start_listener, north):
    listener = start_listener()
    port = str(listener.port)
    ok = _dcmtk("echoscu", "-aet", "STORESCU", "-aec", "NORTH_AE", "127.0.0.1", port)
    assert ok.returncode == 0, ok.stderr
    stranger = _dcmtk("echoscu", "-aet", "STRANGER", "-aec", "NORTH_AE", "127.0.0.1", port)
    assert stranger.returncode != 0
    assert "Calling AE Title Not Recognized" in stranger.stderr
    # PACS is allowed from 10.9.9.9 only, not from this machine.
    elsewhere = _dcmtk("echoscu", "-aet", "PACS", "-aec", "NORTH_AE", "127.0.0.1", port)
    assert "Calling AE Title Not Recognized" in elsewhere.stderr
    nobody = _dcmtk("echoscu", "-aet", "STORESCU", "-aec", "SOUTH_AE", "127.0.0.1", port)
    assert "Called AE Title Not Recognized" in nobody.stderr

    events = AuditEvent.objects.filter(action=AuditAction.DICOM_ASSOCIATION).order_by("id")
    wait_for(lambda: events.count() == 4, what="four association events")
    refused = [e.after["refused"] for e in events if e.after.get("refused")]
    assert refused == [
        "calling AE title not allowed",
        "calling AE title not allowed",
        "called AE title unknown",
    ]
    assert [e.target for e in events][1] == "STRANGER (127.0.0.1) -> NORTH_AE"


def test_storescu_sends_a_folder_with_real_chest_films(
    start_listener, north, tmp_path, admin_client
):
    listener = start_listener()
    folder = tmp_path / "study"
    real_film(folder / "rg1.dcm")
    real_film(folder / "rg1-j2k.dcm", "jpeg2000")
    for i in range(3):
        make_dicom(folder / f"dx{i}.dcm", rows=128, cols=128)
    make_dicom(folder / "adult.dcm", birth_date="19700101")
    make_dicom(folder / "ct.dcm", modality="CT", extra={"SOPClassUID": CT})
    sent = _dcmtk(
        "storescu", "-aet", "STORESCU", "-aec", "NORTH_AE", "+sd", "-xv", "-nh", "-v",
        "127.0.0.1", str(listener.port), str(folder),
    )  # fmt: skip
    assert sent.stderr.count("Received Store Response (Success)") == 5, sent.stderr
    assert sent.stderr.count("Received Store Response (Error") == 2, sent.stderr

    upload = Upload.objects.get(site=north)
    assert upload.source == Upload.Source.DICOM
    assert upload.sender == "STORESCU (127.0.0.1)"
    wait_for(lambda: Upload.objects.get(pk=upload.pk).status == Upload.Status.DONE)
    upload.refresh_from_db()
    assert (upload.total_files, upload.accepted_count, upload.rejected_count) == (7, 5, 0 + 2)
    reasons = set(upload.files.filter(outcome="rejected").values_list("reason", flat=True))
    assert reasons == {
        "modality CT is not a radiograph (expected CR or DX)",
        "age 50.0 years is out of scope (18 years or more)",
    }
    # Stored as every upload is: de-identified, each file where its row says.
    for image in Image.objects.filter(site=north):
        ds = dcmread(settings.DATA_DIR / image.file)
        assert str(ds.PatientName) == str(ds.PatientID) == image.patient_pseudonym
        assert ds.preamble == bytes(128)
    j2k = Image.objects.filter(site=north, transfer_syntax_uid=JPEG2000Lossless)
    assert j2k.count() == 1
    # On the Uploads page and in the API like any upload, with its sender.
    assert "dicom · STORESCU (127.0.0.1)" in admin_client.get("/uploads/").content.decode()
    assert admin_client.get(f"/api/uploads/{upload.pk}/").json()["sender"] == upload.sender
    ended = AuditEvent.objects.filter(action=AuditAction.DICOM_ASSOCIATION, site_id=north.pk)
    wait_for(ended.exists, what="the association's audit event")
    ended = ended.get()
    assert ended.after == {"upload": upload.pk, "accepted": 5, "duplicate": 0, "rejected": 2}


def _sender(*contexts: str) -> AE:
    ae = AE(ae_title="STORESCU")
    for sop in contexts:
        ae.add_requested_context(sop, list(ACCEPTED_TRANSFER_SYNTAXES[:4]) + [JPEG2000Lossless])
    return ae


def test_each_response_names_its_outcome(start_listener, north, tmp_path):
    listener = start_listener()
    assoc = _sender(CR, DX).associate("127.0.0.1", listener.port, ae_title="NORTH_AE")
    assert assoc.is_established
    film = dcmread(real_film(tmp_path / "a.dcm"))
    again = dcmread(real_film(tmp_path / "b.dcm"))  # the same pixels, another instance
    child = make_dicom(tmp_path / "c.dcm")
    damaged = dcmread(make_dicom(tmp_path / "d.dcm", rows=128, cols=128))
    damaged.PixelData = damaged.PixelData[: len(damaged.PixelData) // 2]
    try:
        statuses = [assoc.send_c_store(ds) for ds in (film, again, dcmread(child), damaged)]
    finally:
        assoc.release()
    codes = [s.Status for s in statuses]
    assert codes == [
        services.STATUS_SUCCESS,
        services.STATUS_DUPLICATE,
        services.STATUS_SUCCESS,
        services.STATUS_REFUSED,
    ]
    assert statuses[1].ErrorComment.startswith("duplicate: same pixels as image ")
    assert statuses[3].ErrorComment.startswith("truncated pixel data")
    assert all(len(s.get("ErrorComment", "")) <= 64 for s in statuses)


def test_only_contexts_ingest_reads_are_accepted(start_listener, north):
    listener = start_listener()
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(DX, ["1.2.840.10008.1.2.4.100"])  # MPEG-2: no ingest reads it
    ae.add_requested_context(DX, ACCEPTED_TRANSFER_SYNTAXES[-1])
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="NORTH_AE")
    try:
        accepted = {c.transfer_syntax[0] for c in assoc.accepted_contexts}
        rejected = [c.transfer_syntax[0] for c in assoc.rejected_contexts]
    finally:
        assoc.release()
    assert accepted == {ACCEPTED_TRANSFER_SYNTAXES[-1]}
    assert rejected == ["1.2.840.10008.1.2.4.100"]


def test_a_killed_listener_loses_no_acknowledged_instance(start_listener, north, tmp_path):
    listener = start_listener()
    assoc = _sender(DX).associate("127.0.0.1", listener.port, ae_title="NORTH_AE")
    acknowledged = 0
    for i in range(6):
        if i == 4:
            listener.kill()  # SIGKILL mid-association, after four answers
        try:
            status = assoc.send_c_store(dcmread(make_dicom(tmp_path / f"{i}.dcm")))
        except Exception:  # noqa: BLE001 (the connection went with the process)
            break
        if status and status.Status == services.STATUS_SUCCESS:
            acknowledged += 1
    assoc.abort()
    assert acknowledged == 4
    images = Image.objects.filter(site=north)
    assert images.count() == acknowledged
    assert all((settings.DATA_DIR / image.file).is_file() for image in images)
    upload = Upload.objects.get(site=north)
    assert upload.status == Upload.Status.PROCESSING  # the killed listener could not close it
    start_listener()  # closes what a stopped listener left open
    wait_for(lambda: Upload.objects.get(pk=upload.pk).status == Upload.Status.DONE)
    upload.refresh_from_db()
    assert (upload.total_files, upload.accepted_count) == (4, 4)
    assert UploadFile.objects.filter(upload=upload).count() == 4


def test_dicom_ae_command(north, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    call_command("dicom_ae", "north", "NORTH2", "--calling", "MODALITY@192.168.1.20")
    call_command("dicom_ae", "north")
    assert "north: NORTH2; senders: MODALITY@192.168.1.20 -> NORTH2" in capsys.readouterr().out
    with pytest.raises(CommandError, match="not an IP address"):
        call_command("dicom_ae", "north", "NORTH2", "--calling", "MODALITY@somewhere")
    with pytest.raises(CommandError, match="1 to 16 characters"):
        call_command("dicom_ae", "north", "A_TITLE_OF_TWENTY_CH")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("dicom_ae", "nowhere", "X")
    events = AuditEvent.objects.filter(action=AuditAction.DICOM_AE).order_by("id")
    before = {"ae_title": "NORTH_AE", "senders": ["PACS@10.9.9.9", "STORESCU"]}
    assert events.last().before == before
    assert events.last().after == {"ae_title": "NORTH2", "senders": ["MODALITY@192.168.1.20"]}


@pytest.mark.skipif(orthanc_binary() is None, reason="Orthanc (Debian package) is not installed")
def test_orthanc_pushes_a_study_as_a_hospital_pacs_would(start_listener, north, tmp_path):
    """Orthanc, configured with the portal as a modality, sends a study through its REST API
    (`/modalities/<name>/store`), calling as ORTHANC."""
    listener = start_listener()
    services.site_ae_set(site=north, ae_title="NORTH_AE", senders=["ORTHANC@127.0.0.1"])
    pacs = Orthanc(
        tmp_path / "orthanc", modalities={"portal": ("NORTH_AE", "127.0.0.1", listener.port)}
    )
    try:
        study = {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1"}
        ids = [pacs.store(real_film(tmp_path / "rg1.dcm", **study))]
        ids += [pacs.store(make_dicom(tmp_path / f"dx{i}.dcm", extra=study)) for i in range(3)]
        answer = pacs.rest(
            "POST", "/modalities/portal/store", {"Resources": ids, "Synchronous": True}
        )
    finally:
        pacs.stop()
    assert answer["InstancesCount"] == 4, answer
    assert answer["FailedInstancesCount"] == 0, answer
    upload = Upload.objects.get(site=north)
    assert upload.sender == "ORTHANC (127.0.0.1)"
    wait_for(lambda: Upload.objects.get(pk=upload.pk).status == Upload.Status.DONE)
    assert Image.objects.filter(site=north).count() == 4


def _certificate(folder: Path, name: str, issuer=None) -> tuple[Path, Path, object, object]:
    """A certificate for `name` (self-signed, or signed by `issuer`: (cert, key))."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_cert, signer_key = issuer or (None, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_cert.subject if signer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    )
    cert = builder.sign(signer_key, hashes.SHA256())
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert, key


def test_dicom_over_tls_with_client_certificates(start_listener, north, tmp_path):
    ca_pem, _ca_key_path, ca, ca_key = _certificate(tmp_path, "ca")
    server_pem, server_key, _, _ = _certificate(tmp_path, "portal", (ca, ca_key))
    client_pem, client_key, _, _ = _certificate(tmp_path, "modality", (ca, ca_key))
    listener = start_listener(
        PORTAL_DICOM_TLS_CERT=str(server_pem),
        PORTAL_DICOM_TLS_KEY=str(server_key),
        PORTAL_DICOM_TLS_CA=str(ca_pem),
    )
    wait_for(lambda: _listening(listener.tls_port), what="the TLS port")

    def echo(with_certificate: bool) -> bool:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_pem))
        if with_certificate:
            context.load_cert_chain(str(client_pem), str(client_key))
        ae = AE(ae_title="STORESCU")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate(
            "127.0.0.1", listener.tls_port, ae_title="NORTH_AE", tls_args=(context, "127.0.0.1")
        )
        if not assoc.is_established:
            return False
        status = assoc.send_c_echo()
        assoc.release()
        return status.Status == 0

    assert echo(with_certificate=True)
    assert not echo(with_certificate=False)  # the CA is set: a certificate is required


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_admin_changes_are_audited(admin_client, north):
    site_ae = north.dicom_ae
    page = f"/admin/pacs/siteae/{site_ae.pk}/change/"
    form = {"site": north.pk, "ae_title": "NORTH_NEW"}
    existing = list(site_ae.senders.all())
    for n, sender in enumerate(existing):  # the two it had go
        form.update(
            {
                f"senders-{n}-id": sender.pk,
                f"senders-{n}-site_ae": site_ae.pk,
                f"senders-{n}-ae_title": sender.ae_title,
                f"senders-{n}-address": sender.address or "",
                f"senders-{n}-DELETE": "on",
            }
        )
    n = len(existing)
    form.update(
        {
            f"senders-{n}-ae_title": "MODALITY",
            f"senders-{n}-address": "",
            "senders-TOTAL_FORMS": str(n + 1),
            "senders-INITIAL_FORMS": str(n),
            "senders-MIN_NUM_FORMS": "0",
            "senders-MAX_NUM_FORMS": "1000",
        }
    )
    answer = admin_client.post(page, form)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    event = AuditEvent.objects.filter(action=AuditAction.DICOM_AE).order_by("id").last()
    assert event.before == {"ae_title": "NORTH_AE", "senders": ["PACS@10.9.9.9", "STORESCU"]}
    assert event.after == {"ae_title": "NORTH_NEW", "senders": ["MODALITY"]}


def test_a_window_gathers_a_senders_associations_into_one_upload(start_listener, north, tmp_path):
    """A modality that opens an association per image: with PORTAL_DICOM_UPLOAD_WINDOW_S,
    its associations fill one upload, closed once it has been silent that long."""
    listener = start_listener(PORTAL_DICOM_UPLOAD_WINDOW_S="3")
    for i in range(3):
        assoc = _sender(DX).associate("127.0.0.1", listener.port, ae_title="NORTH_AE")
        status = assoc.send_c_store(dcmread(make_dicom(tmp_path / f"{i}.dcm")))
        assoc.release()
        assert status.Status == services.STATUS_SUCCESS
    upload = Upload.objects.get(site=north)
    assert upload.status == Upload.Status.PROCESSING  # the window is still open
    wait_for(lambda: Upload.objects.get(pk=upload.pk).status == Upload.Status.DONE, timeout_s=30)
    upload.refresh_from_db()
    assert (upload.total_files, upload.accepted_count) == (3, 3)
    events = AuditEvent.objects.filter(action=AuditAction.DICOM_ASSOCIATION, site_id=north.pk)
    assert [e.after["upload"] for e in events] == [upload.pk] * 3
