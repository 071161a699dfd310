"""Exports: the manifest.csv is a CSV a spreadsheet may open (a site slug such as "-x" is
written neutralised, "'-x", and an import reads it back as the slug); a ZIP written by the
command line is on the record like a download."""

import csv
import io
import zipfile

import pytest
from django.core.management import call_command

from portal.accounts.models import AuditEvent
from portal.accounts.trust import trusted_portal_add
from portal.core import signing
from portal.validation.imports import import_zip
from tests.portal import factories as f


@pytest.mark.django_db
def test_a_slug_starting_like_a_formula_is_neutralised_in_the_manifest_and_imports_back(
    tmp_path, admin_user
):
    out = f.foreign_export(tmp_path / "x.zip", slug="-x", reviewer=admin_user)
    with zipfile.ZipFile(out) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
    assert [r["site"] for r in rows] == ["'-x"]
    assert rows[0]["file"] == "images/-x/1.dcm"  # begins "images/": nothing to neutralise

    trusted_portal_add(actor=None, name="self", public_key=signing.own_public_key())
    version = import_zip(path=out, user=admin_user)

    assert [s.slug for s in version.validation_set.sites.all()] == ["-x"]
    assert [i.site.slug for i in version.items.select_related("site")] == ["-x"]


@pytest.mark.django_db
def test_the_command_lines_export_is_on_the_record_for_each_site(tmp_path, admin_user):
    version = f.frozen_set("north", reviewer=admin_user)
    out = tmp_path / "set.zip"

    call_command("validation_set", "export", "set-north:1", "--out", str(out))

    event = AuditEvent.objects.get(action="export.download")
    assert (event.site.slug, event.target, event.actor_id) == ("north", "set-north:1", None)
    assert event.after["size_bytes"] == out.stat().st_size
    assert version.validation_set.name == "set-north"
