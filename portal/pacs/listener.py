"""The DICOM receiver (`manage.py dicom_listen`): C-ECHO, and C-STORE into the site whose AE
title is called. One association is one upload; each instance is answered after its commit."""

import logging
import signal
import ssl
import sys
import threading
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification

from portal.ingest.dicom import ACCEPTED_TRANSFER_SYNTAXES
from portal.ingest.models import Site, Upload
from portal.ingest.services import Stream, streams_close_orphaned
from portal.pacs import services
from portal.pacs.services import Sender

log = logging.getLogger(__name__)
# pynetdicom logs every message it decodes at DEBUG (with the data set's elements: PHI).
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

# The AE title the portal answers with; the called AE title each site's PACS uses is the
# site's own (`SiteAE`), checked when an association is requested.
PORTAL_AE_TITLE = "CXR-AGE"


@dataclass
class _Open:
    """A sender's upload being filled, by how many associations at the moment."""

    stream: Stream
    users: int = 0
    timer: threading.Timer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one file at a time


class _Streams:
    """The open upload of each sender (site, calling AE title, address). Without a window,
    each association is its own upload. With one (`PORTAL_DICOM_UPLOAD_WINDOW_S`), the
    associations of a sender that follow each other within it fill one upload, which closes
    once the sender has been silent that long: what modalities that open an association per
    image need."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._open: dict[tuple, _Open] = {}
        self._lock = threading.Lock()

    def acquire(self, key: tuple, site: Site, sender: Sender) -> _Open:
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                stream = Stream(site=site, source=Upload.Source.DICOM, sender=str(sender))
                entry = self._open[key] = _Open(stream)
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
            entry.users += 1
            return entry

    def release(self, key: tuple) -> int:
        """An association that used the sender's upload ended; returns the upload's id."""
        with self._lock:
            entry = self._open[key]
            entry.users -= 1
            if entry.users > 0:
                return entry.stream.upload.pk
            if self.window_s > 0:
                entry.timer = threading.Timer(self.window_s, self._expire, (key, entry))
                entry.timer.daemon = True
                entry.timer.start()
                return entry.stream.upload.pk
            del self._open[key]
        entry.stream.close()
        return entry.stream.upload.pk

    def _expire(self, key: tuple, entry: _Open) -> None:
        with self._lock:
            if self._open.get(key) is not entry or entry.users > 0:
                return  # taken again meanwhile
            del self._open[key]
        try:
            entry.stream.close()
        except DatabaseError:
            log.exception("a DICOM upload could not be closed")
        finally:
            connection.close()

    def close_all(self) -> None:
        """The listener stops: every upload waiting for its window closes now."""
        with self._lock:
            entries, self._open = list(self._open.values()), {}
        for entry in entries:
            if entry.timer is not None:
                entry.timer.cancel()
            entry.stream.close()


@dataclass
class _Session:
    """What one accepted association has done so far."""

    site: Site
    called: str
    sender: Sender
    upload: _Open | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"accepted": 0, "duplicate": 0, "rejected": 0}
    )

    @property
    def key(self) -> tuple:
        return (self.site.pk, self.sender.ae_title, self.sender.address)


class Receiver:
    """The event handlers of one listening AE, with the sessions of its open associations."""

    def __init__(self, window_s: float = 0) -> None:
        self._sessions: dict[int, _Session] = {}
        self._lock = threading.Lock()
        self.streams = _Streams(window_s)

    def handlers(self) -> list[tuple]:
        return [
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_CONN_CLOSE, self.on_closed),
        ]

    def on_requested(self, event: evt.Event) -> None:
        """Refuse an association whose called AE title is no site's, or whose caller the
        site has not allowed (from that address)."""
        assoc: Association = event.assoc
        primitive = assoc.requestor.primitive
        called = _text(primitive.called_ae_title)
        sender = Sender(_text(primitive.calling_ae_title), str(assoc.requestor.address))
        try:
            outcome = services.association_site(
                called=called, calling=sender.ae_title, address=sender.address
            )
            if isinstance(outcome, int):
                reason = {
                    services.CALLED_AE_UNKNOWN: "called AE title unknown",
                    services.CALLING_AE_UNKNOWN: "calling AE title not allowed",
                }[outcome]
                assoc.acse.send_reject(0x01, 0x01, outcome)
                assoc.kill()  # waits for the rejection to be sent, as pynetdicom's own do
                services.association_audit(called=called, sender=sender, site=None, refused=reason)
                log.warning("association from %s to %s refused: %s", sender, called, reason)
                return
            with self._lock:
                self._sessions[id(assoc)] = _Session(site=outcome, called=called, sender=sender)
        except DatabaseError:
            assoc.acse.send_reject(0x02, 0x03, 0x01)  # transient: temporary congestion
            assoc.kill()
            log.exception("association from %s refused: the database cannot be reached", sender)
        finally:
            connection.close()

    def on_store(self, event: evt.Event) -> Dataset:
        """Ingest one instance; answer with its outcome once it is committed."""
        session = self._sessions.get(id(event.assoc))
        status = Dataset()
        if session is None:  # not possible for an accepted association; refuse safely
            status.Status = services.STATUS_OUT_OF_RESOURCES
            return status
        try:
            close_old_connections()
            if session.upload is None:
                session.upload = self.streams.acquire(session.key, session.site, session.sender)
            with session.upload.lock:
                record = session.upload.stream.add(event.encoded_dataset(include_meta=True))
        except (OSError, DatabaseError) as exc:
            log.error("an instance from %s could not be stored (%s)", session.sender, type(exc))
            status.Status = services.STATUS_OUT_OF_RESOURCES
            status.ErrorComment = services.error_comment(f"not stored: {type(exc).__name__}")
            return status
        session.counts[record.outcome] += 1
        code, comment = services.store_status(record)
        status.Status = code
        if comment:
            status.ErrorComment = comment
        return status

    def on_closed(self, event: evt.Event) -> None:
        """However the association ended (release, abort, a dropped connection), its upload
        holds what was acknowledged: close it, and log the association with its counts."""
        with self._lock:
            session = self._sessions.pop(id(event.assoc), None)
        if session is None:
            return
        try:
            close_old_connections()
            upload_id = self.streams.release(session.key) if session.upload else None
            services.association_audit(
                called=session.called,
                sender=session.sender,
                site=session.site,
                counts=session.counts,
                upload_id=upload_id,
            )
        except DatabaseError:
            log.exception("association from %s: its upload could not be closed", session.sender)
        finally:
            connection.close()


def _text(value: str | bytes) -> str:
    return (value.decode("ascii", "replace") if isinstance(value, bytes) else value).strip()


def application_entity() -> AE:
    """The portal's AE: verification, and every storage SOP class (so that a CT or an adult's
    film reaches the checks and is refused with its reason) in every transfer syntax ingest
    reads."""
    ae = AE(ae_title=PORTAL_AE_TITLE)
    ae.require_called_aet = False  # a site's title, checked in `on_requested`
    ae.add_supported_context(Verification)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, list(ACCEPTED_TRANSFER_SYNTAXES))
    cfg = settings.DICOM
    ae.maximum_associations = cfg["MAX_ASSOCIATIONS"]
    ae.acse_timeout = cfg["TIMEOUT_S"]
    ae.dimse_timeout = cfg["TIMEOUT_S"]
    ae.network_timeout = cfg["TIMEOUT_S"]
    ae.maximum_pdu_size = 0  # unlimited: fewer, larger PDUs for large films
    return ae


def tls_context() -> ssl.SSLContext | None:
    """DICOM over TLS (PS3.15 B.1) when a certificate is configured; the peers' certificates
    are checked against `PORTAL_DICOM_TLS_CA` when set."""
    cfg = settings.DICOM
    if not cfg["TLS_CERT"]:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cfg["TLS_CERT"], cfg["TLS_KEY"] or None)
    if cfg["TLS_CA"]:
        context.load_verify_locations(cfg["TLS_CA"])
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def serve(*, host: str, port: int, tls_port: int | None = None) -> None:
    """Listen until interrupted. Uploads a killed listener left open are closed first: each
    of their files was acknowledged only after its commit."""
    # A stop (SIGTERM from `make run`, Docker) closes the uploads a window holds open.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    orphaned = streams_close_orphaned(source=Upload.Source.DICOM)
    if orphaned:
        log.warning("closed %d upload(s) left open by a listener that stopped", orphaned)
    connection.close()
    receiver = Receiver(settings.DICOM["UPLOAD_WINDOW_S"])
    ae = application_entity()
    servers = []
    context = tls_context()
    if context is not None and tls_port:
        servers.append(
            ae.start_server(
                (host, tls_port), block=False, evt_handlers=receiver.handlers(), ssl_context=context
            )
        )
        log.info("DICOM over TLS on %s:%d", host, tls_port)
    log.info("DICOM listener on %s:%d (AE %s)", host, port, PORTAL_AE_TITLE)
    try:
        ae.start_server((host, port), block=True, evt_handlers=receiver.handlers())
    finally:
        for server in servers:
            server.shutdown()
        receiver.streams.close_all()
