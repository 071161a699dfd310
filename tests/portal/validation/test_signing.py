"""Signed exports and validated imports: each portal signs its exports' manifest with its own
Ed25519 key; an import takes only what a trusted portal signed (unsigned only when allowed,
and so recorded), refuses a signature that does not verify even then, and validates every row
and the definition as a review decision would. Through `manage.py` in real subprocesses (a
second portal with its own data folder, database and key), the admin, the API and the page;
a refusal keeps nothing."""

import base64
import csv
import hashlib
import io
import json
import re
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from rest_framework.test import APIClient

from portal.accounts.models import AuditEvent
from portal.accounts.trust import trusted_portal_add
from portal.core import signing
from portal.core.models import TrustedPortal
from portal.ingest.models import Image
from portal.validation import exports
from portal.validation.models import ValidationSet
from portal.validation.services import manifest_sha256
from tests.conftest import manage
from tests.portal.validation.portals import (
    import_into,
    last_line,
    query,
    run_portal,
    snapshot,
)
from tests.portal.validation.test_transfer import FILES, build_world

KEY_LINE = re.compile(r"ed25519:[A-Za-z0-9+/]{43}=")


# Rewriting an export as a forger would --------------------------------------------------


def public_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "ed25519:" + base64.b64encode(raw).decode()


def sign_with(key: Ed25519PrivateKey) -> Callable[[bytes], bytes]:
    """manifest.sig as docs/validation.md documents it, written here without the portal's code."""

    def sign(data: bytes) -> bytes:
        return json.dumps(
            {
                "algorithm": "ed25519",
                "public_key": public_text(key),
                "key_id": "whatever",
                "signature": base64.b64encode(key.sign(data)).decode(),
            }
        ).encode()

    return sign


def keep_signature(_: bytes) -> None:
    return None  # marker: copy the original manifest.sig


def rewrite(
    source: Path,
    target: Path,
    *,
    rows: Callable[[list[dict]], None] | None = None,
    manifest: Callable[[dict], None] | None = None,
    sign: Callable[[bytes], bytes | None] | None = keep_signature,
) -> Path:
    """Copy an export, editing its rows and manifest.json, recomputing every checksum (so
    only the signature can tell), then keeping the signature (`keep_signature`), dropping it
    (`sign=None`) or signing anew (`sign=sign_with(key)`)."""
    with zipfile.ZipFile(source) as zin:
        members = {i.filename: zin.read(i) for i in zin.infolist()}
    table = list(csv.DictReader(io.StringIO(members["manifest.csv"].decode())))
    fields = list(table[0])
    if rows:
        rows(table)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    members["manifest.csv"] = out.getvalue().encode()
    document = json.loads(members["manifest.json"])
    items = [{**r, "image": int(r["image"])} for r in table]
    document["manifest_sha256"] = manifest_sha256(items)
    document["files_sha256"] = hashlib.sha256(members["manifest.csv"]).hexdigest()
    if manifest:
        manifest(document)
    members["manifest.json"] = json.dumps(document, indent=2).encode()
    signature = members.pop("manifest.sig")
    if sign is keep_signature:
        members["manifest.sig"] = signature
    elif sign is not None:
        members["manifest.sig"] = sign(members["manifest.json"])
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    return target


def shift_ages(days: int) -> Callable[[list[dict]], None]:
    def edit(table: list[dict]) -> None:
        for row in table:
            row["curated_age_days"] = str(int(row["curated_age_days"]) + days)

    return edit


def set_first(field: str, value: str) -> Callable[[list[dict]], None]:
    def edit(table: list[dict]) -> None:
        table[0][field] = value

    return edit


def set_definition(value) -> Callable[[dict], None]:
    def edit(document: dict) -> None:
        document["definition"] = value

    return edit


def update_definition(**values) -> Callable[[dict], None]:
    def edit(document: dict) -> None:
        document["definition"] = {**document["definition"], **values}

    return edit


def tamper_signature(data: bytes) -> bytes:
    """A signature by this portal with one bit of it flipped."""
    document = json.loads(signing.sign(data))
    raw = bytearray(base64.b64decode(document["signature"]))
    raw[10] ^= 0x01
    document["signature"] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(document).encode()


def truncate(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return target


# The key and the trust ---------------------------------------------------------------------


@pytest.mark.django_db
def test_signing_key_is_made_on_first_use_owner_only_and_printed_on_the_last_line(tmp_path):
    folder = tmp_path / "fresh"
    assert not (folder / "signing_key.pem").exists()

    first = manage("signing_key", "--skip-checks", data_dir=folder)
    again = manage("signing_key", "--skip-checks", data_dir=folder)

    assert first.returncode == again.returncode == 0, first.stderr
    key = last_line(first.stdout)
    assert KEY_LINE.fullmatch(key), key
    assert last_line(again.stdout) == key
    assert "made now" in first.stdout
    assert "made now" not in again.stdout
    path = folder / "signing_key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in path.read_bytes()
    assert key not in path.read_text()  # the file holds the private key, not the public one


@pytest.mark.django_db
def test_signing_key_file_can_live_outside_the_data_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "keys" / "portal.pem"
    monkeypatch.setenv("PORTAL_SIGNING_KEY_FILE", str(elsewhere))
    result = manage("signing_key", "--skip-checks", data_dir=tmp_path / "d")
    assert result.returncode == 0, result.stderr
    assert elsewhere.is_file()
    assert not (tmp_path / "d" / "signing_key.pem").exists()
    assert f"key file: {elsewhere}" in result.stdout


@pytest.mark.django_db
def test_a_signing_key_others_can_read_is_refused(tmp_path):
    folder = tmp_path / "loose"
    assert manage("signing_key", "--skip-checks", data_dir=folder).returncode == 0
    (folder / "signing_key.pem").chmod(0o644)
    result = manage("signing_key", "--skip-checks", data_dir=folder)
    assert result.returncode == 1
    assert "is readable by others (mode 0644): `chmod 600` it" in result.stderr


@pytest.mark.django_db
def test_an_export_carries_a_signature_of_its_exact_manifest_by_this_portals_key(
    tmp_path, data_dir
):
    world = build_world(tmp_path)
    summary = exports.export_write(version=world.version, out=tmp_path / "v1.zip")
    printed = last_line(manage("signing_key", "--skip-checks", data_dir=data_dir).stdout)

    with zipfile.ZipFile(tmp_path / "v1.zip") as zf:
        manifest, document = zf.read("manifest.json"), json.loads(zf.read("manifest.sig"))

    assert document["algorithm"] == "ed25519"
    assert document["public_key"] == printed == summary["signed_by_key"]
    raw = base64.b64decode(printed.removeprefix("ed25519:"))
    # Verified with the library directly: raises if the signature is not over these bytes.
    Ed25519PublicKey.from_public_bytes(raw).verify(
        base64.b64decode(document["signature"]), manifest
    )
    assert document["key_id"] == hashlib.sha256(raw).hexdigest()[:16]


@pytest.mark.django_db(transaction=True)
def test_trusted_portal_command_adds_lists_and_removes_each_on_the_record(data_dir):
    key = public_text(Ed25519PrivateKey.generate())

    added = manage("trusted_portal", "add", "south-portal", f"  {key} ", data_dir=data_dir)
    listed = manage("trusted_portal", "list", data_dir=data_dir)
    twice = manage("trusted_portal", "add", "other", key, data_dir=data_dir)
    bad = manage("trusted_portal", "add", "bad", "ssh-ed25519 AAAA", data_dir=data_dir)
    short = manage("trusted_portal", "add", "short", "ed25519:AAAA", data_dir=data_dir)

    assert added.returncode == 0, added.stderr
    assert "south-portal" in listed.stdout
    assert key in listed.stdout
    assert (twice.returncode, bad.returncode, short.returncode) == (1, 1, 1)
    assert "that key is trusted already, as 'south-portal'" in twice.stderr
    assert "a public key is written ed25519:<base64>" in bad.stderr
    assert "an Ed25519 public key has 32 bytes, not 3" in short.stderr
    assert list(TrustedPortal.objects.values_list("name", "public_key")) == [("south-portal", key)]

    removed = manage("trusted_portal", "remove", "south-portal", data_dir=data_dir)
    unknown = manage("trusted_portal", "remove", "south-portal", data_dir=data_dir)

    assert removed.returncode == 0, removed.stderr
    assert unknown.returncode == 2
    assert not TrustedPortal.objects.exists()
    events = list(AuditEvent.objects.filter(action__startswith="trusted_portal.").order_by("id"))
    assert [(e.action, e.target) for e in events] == [
        ("trusted_portal.add", "south-portal"),
        ("trusted_portal.remove", "south-portal"),
    ]
    assert events[0].after["public_key"] == events[1].before["public_key"] == key


@pytest.mark.django_db
def test_admin_adds_and_deletes_trusted_portals_on_the_record(client, admin_user):
    client.force_login(admin_user)
    key = public_text(Ed25519PrivateKey.generate())

    malformed = client.post(
        "/admin/core/trustedportal/add/", {"name": "south", "public_key": "not a key"}
    )
    added = client.post("/admin/core/trustedportal/add/", {"name": "south", "public_key": key})

    assert malformed.status_code == 200
    assert "a public key is written" in malformed.content.decode()
    assert added.status_code == 302
    portal = TrustedPortal.objects.get()
    assert (portal.name, portal.public_key, portal.added_by) == ("south", key, admin_user)
    deleted = client.post(
        f"/admin/core/trustedportal/{portal.pk}/delete/", {"post": "yes"}, follow=False
    )
    assert deleted.status_code == 302
    assert not TrustedPortal.objects.exists()
    events = AuditEvent.objects.filter(action__startswith="trusted_portal.").order_by("id")
    assert [(e.action, e.actor_id, e.target) for e in events] == [
        ("trusted_portal.add", admin_user.pk, "south"),
        ("trusted_portal.remove", admin_user.pk, "south"),
    ]


# Import through the command line of a second portal --------------------------------------


def _resign_here(data: bytes) -> bytes:
    """Signed anew by this (trusted) portal's own key: only the row checks can refuse it."""
    return signing.sign(data)


UNTRUSTED = Ed25519PrivateKey.generate()
REFUSALS = {
    "unsigned": ({"sign": None}, (), "export is not signed (no manifest.sig)"),
    "forged ages, not re-signed": (
        {"rows": shift_ages(3000), "sign": None},
        (),
        "export is not signed",
    ),
    "forged ages, old signature": (
        {"rows": shift_ages(3000)},
        ("--allow-unsigned",),
        "signature does not verify: the manifest was altered after signing",
    ),
    "forged ages, re-signed with an untrusted key": (
        {"rows": shift_ages(3000), "sign": sign_with(UNTRUSTED)},
        ("--allow-unsigned",),
        f"signed by a portal that is not trusted (key {public_text(UNTRUSTED)}",
    ),
    "forged ages, unsigned, allowed": (
        {"rows": shift_ages(3000), "sign": None},
        ("--allow-unsigned",),
        "is out of scope (0 to under 18 years: 0 to 6573 days)",
    ),
    "tampered signature": (
        {"sign": tamper_signature},
        ("--allow-unsigned",),
        "signature does not verify",
    ),
    "age 99999999": (
        {"rows": set_first("curated_age_days", "99999999"), "sign": _resign_here},
        (),
        "manifest.csv line 2: curated_age_days 99999999 is out of scope",
    ),
    "age -1": (
        {"rows": set_first("curated_age_days", "-1"), "sign": _resign_here},
        (),
        "manifest.csv line 2: curated_age_days -1 is out of scope",
    ),
    "age 6575": (
        {"rows": set_first("curated_age_days", "6575"), "sign": _resign_here},
        (),
        "manifest.csv line 2: curated_age_days 6575 is out of scope",
    ),
    "sex X": (
        {"rows": set_first("sex", "X"), "sign": _resign_here},
        (),
        "manifest.csv line 2: sex 'X' is not one of M, F, O",
    ),
    "unknown status": (
        {"manifest": update_definition(statuses=["confirmed", "banana"]), "sign": _resign_here},
        (),
        "manifest.json: definition.statuses: 'banana' is not a known review status",
    ),
    "unsettled status": (
        {"manifest": update_definition(statuses=["excluded"]), "sign": _resign_here},
        (),
        "definition.statuses: 'excluded' is not a settled age",
    ),
    "definition a list": (
        {"manifest": set_definition(["statuses", "confirmed"]), "sign": _resign_here},
        (),
        "manifest.json: definition must be an object, not list",
    ),
    "definition of wrong types": (
        {"manifest": update_definition(min_age_days="10"), "sign": _resign_here},
        (),
        "manifest.json: definition.min_age_days must be a whole number of days from 0 to 6573",
    ),
    "definition bound out of scope": (
        {"manifest": update_definition(max_age_days=99999999), "sign": _resign_here},
        (),
        "manifest.json: definition.max_age_days must be a whole number of days from 0 to 6573",
    ),
    "provenance a list": (
        {"manifest": lambda d: d.update(provenance=[1]), "sign": _resign_here},
        (),
        "manifest.json: provenance must be an object",
    ),
    "truncated ZIP": (None, (), "bad.zip: not a readable ZIP (BadZipFile)"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(REFUSALS))
def test_import_command_refuses_with_the_reason_and_keeps_nothing(tmp_path, portal2, case):
    edit, extra, message = REFUSALS[case]
    world = build_world(tmp_path)
    good = tmp_path / "good.zip"
    exports.export_write(version=world.version, out=good)
    bad = tmp_path / "bad.zip"
    if edit is None:
        truncate(good, bad)
    else:
        rewrite(good, bad, **edit)
    before = snapshot(portal2)

    result = import_into(portal2, bad, "--site-prefix", "ext-", *extra)

    assert result.returncode == 1, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(portal2) == before


@pytest.mark.django_db
def test_an_unsigned_export_imports_with_allow_unsigned_and_its_provenance_says_so(
    tmp_path, untrusting_portal2
):
    world = build_world(tmp_path)
    exports.export_write(version=world.version, out=tmp_path / "good.zip")
    unsigned = rewrite(tmp_path / "good.zip", tmp_path / "unsigned.zip", sign=None)

    result = import_into(untrusting_portal2, unsigned, "--allow-unsigned")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"imported cxr-val v1: {len(FILES)} items (unsigned)"
    ((provenance,),) = query(
        untrusting_portal2, "SELECT provenance FROM validation_validationsetversion"
    )
    assert json.loads(provenance)["imported_from"]["signature"] == {"status": "unsigned"}


@pytest.mark.slow  # two portals, each a process of its own
@pytest.mark.django_db
def test_round_trip_between_two_portals_once_the_second_trusts_the_firsts_key(
    tmp_path, data_dir, untrusting_portal2
):
    """Two data folders, two keys: portal 2 refuses portal 1's export until its operator
    trusts the key portal 1 prints, then imports it, recording who signed it."""
    world = build_world(tmp_path)
    zip_path = tmp_path / "v1.zip"
    exports.export_write(version=world.version, out=zip_path)
    key1 = last_line(manage("signing_key", "--skip-checks", data_dir=data_dir).stdout)
    key2 = last_line(run_portal(untrusting_portal2, "signing_key").stdout)
    assert KEY_LINE.fullmatch(key1)
    assert KEY_LINE.fullmatch(key2)
    assert key1 != key2
    before = snapshot(untrusting_portal2)

    refused = import_into(untrusting_portal2, zip_path)

    assert refused.returncode == 1
    assert f"signed by a portal that is not trusted (key {key1}" in refused.stderr
    assert snapshot(untrusting_portal2) == before

    trusted = run_portal(untrusting_portal2, "trusted_portal", "add", "north-hospital", key1)
    assert trusted.returncode == 0, trusted.stderr
    imported = import_into(untrusting_portal2, zip_path)

    assert imported.returncode == 0, imported.stderr
    assert f"(signed by north-hospital (key {key1}" in imported.stdout
    ((provenance,),) = query(
        untrusting_portal2, "SELECT provenance FROM validation_validationsetversion"
    )
    signature = json.loads(provenance)["imported_from"]["signature"]
    assert signature == {
        "status": "signed",
        "signed_by": "north-hospital",
        "public_key": key1,
        "key_id": signing.key_id(key1),
    }
    ages = sorted(
        a
        for (a,) in query(
            untrusting_portal2, "SELECT curated_age_days FROM validation_validationitem"
        )
    )
    assert ages == sorted(i.curated_age_days for i in world.version.items.all())


# Import through the API and the page ------------------------------------------------------

REMOTE = Ed25519PrivateKey.generate()


def as_from_another_portal(source: Path, target: Path, **edits) -> Path:
    """This portal's export as another portal would have written it (its own image ids) and
    signed it with the REMOTE key: importing it here is then no re-import of our own."""

    extra = edits.pop("rows", None)

    def other_ids(table: list[dict]) -> None:
        for row in table:
            row["image"] = str(int(row["image"]) + 100_000)
        if extra:
            extra(table)

    return rewrite(source, target, rows=other_ids, **{"sign": sign_with(REMOTE), **edits})


@pytest.fixture
def remote_zip(tmp_path) -> Callable[..., Path]:
    world = build_world(tmp_path)
    exports.export_write(version=world.version, out=tmp_path / "ours.zip")
    trusted_portal_add(actor=None, name="remote", public_key=public_text(REMOTE))

    def make(name: str = "remote.zip", **edits) -> Path:
        return as_from_another_portal(tmp_path / "ours.zip", tmp_path / name, **edits)

    return make


def stored_state() -> tuple:
    images = sorted(p.name for p in (settings.DATA_DIR / "images").rglob("*") if p.is_file())
    return ValidationSet.objects.count(), Image.objects.count(), images


def post_import(client, path: Path, **fields):
    with path.open("rb") as fh:
        return client.post("/api/validation-set-imports/", {"file": fh, **fields})


@pytest.fixture
def api(admin_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.mark.django_db
def test_api_imports_a_trusted_export_and_shows_who_signed_it(api, remote_zip, client, admin_user):
    response = post_import(api, remote_zip(), site_prefix="ext-")

    assert response.status_code == 201, response.content
    data = response.json()
    assert data["name"] == "cxr-val-imported"
    assert data["imported"]["signature"] == {
        "status": "signed",
        "signed_by": "remote",
        "public_key": public_text(REMOTE),
        "key_id": signing.key_id(public_text(REMOTE)),
    }
    assert api.get("/api/validation-sets/cxr-val-imported/").json()["imported"] == data["imported"]
    assert api.get("/api/validation-sets/cxr-val/").json()["imported"] is None
    client.force_login(admin_user)
    page = client.get("/validation-sets/cxr-val-imported/").content.decode()
    assert "signed by <strong>remote</strong>" in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("edits", "fields", "message"),
    [
        ({"sign": None}, {}, "export is not signed"),
        ({"sign": sign_with(UNTRUSTED)}, {"allow_unsigned": "true"}, "not trusted (key ed25519:"),
        ({"sign": tamper_signature}, {"allow_unsigned": "true"}, "signature does not verify"),
        ({"rows": set_first("curated_age_days", "99999999")}, {}, "is out of scope"),
        ({"rows": set_first("sex", "?")}, {}, "sex '?' is not one of M, F, O"),
        ({"manifest": set_definition([1, 2])}, {}, "definition must be an object, not list"),
        ({"manifest": update_definition(sex=3)}, {}, "definition.sex must be M, F or null"),
    ],
    ids=["unsigned", "untrusted", "tampered", "age", "sex", "definition-list", "definition-type"],
)
def test_api_refuses_with_the_reason_and_keeps_nothing(api, remote_zip, edits, fields, message):
    path = remote_zip(**edits)
    before = stored_state()

    response = post_import(api, path, site_prefix="ext-", **fields)

    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert stored_state() == before


@pytest.mark.django_db
def test_api_refuses_a_truncated_zip_naming_it(api, remote_zip, tmp_path):
    bad = truncate(remote_zip(), tmp_path / "cut.zip")
    response = post_import(api, bad, site_prefix="ext-")
    assert response.status_code == 400
    assert response.json()["detail"] == "cut.zip: not a readable ZIP (BadZipFile)"


@pytest.mark.django_db
def test_api_imports_an_unsigned_export_only_when_allowed_and_says_unsigned(api, remote_zip):
    path = remote_zip(sign=None)
    assert post_import(api, path, site_prefix="ext-").status_code == 400

    response = post_import(api, path, site_prefix="ext-", allow_unsigned="true")

    assert response.status_code == 201, response.content
    assert response.json()["imported"]["signature"] == {"status": "unsigned"}


@pytest.mark.django_db
def test_import_page_refuses_an_unsigned_export_and_takes_it_when_allowed(
    client, admin_user, remote_zip
):
    client.force_login(admin_user)
    assert "import-form" in client.get("/validation-sets/import/new/").content.decode()
    path = remote_zip(sign=None)
    before = stored_state()

    with path.open("rb") as fh:
        refused = client.post("/validation-sets/import/new/", {"file": fh, "site_prefix": "ext-"})
    shown = client.get(refused.url).content.decode()

    assert refused.status_code == 302
    assert refused.url == "/validation-sets/import/new/"
    assert "Import refused: export is not signed" in shown
    assert stored_state() == before

    with path.open("rb") as fh:
        taken = client.post(
            "/validation-sets/import/new/",
            {"file": fh, "site_prefix": "ext-", "allow_unsigned": "on"},
        )
    assert taken.status_code == 302
    assert taken.url == "/validation-sets/cxr-val-imported/"
    page = client.get(taken.url).content.decode()
    assert "<strong>unsigned</strong>" in page
    assert f"{len(FILES)} items, unsigned" in page
