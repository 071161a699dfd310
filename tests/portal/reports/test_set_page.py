"""A validation set's page shows its reports part (the form that asks for a report, and the
set's reports) through the reports app's template tag: the validation app, below reports in
the layers contract, imports nothing of it."""

import pytest
from django.test import Client

from portal.reports.services import DEFAULT_GROUPS_TEXT, report_create
from tests.portal.reports.test_reports import frozen_world


@pytest.mark.django_db
def test_the_set_page_offers_a_report_of_each_version_and_lists_the_sets_reports():
    world = frozen_world(predict=False)
    report = report_create(
        version=world["frozen"], model=world["model"], compare=world["other"], build=False
    )
    client = Client()
    client.force_login(world["lead"])

    page = client.get(f"/validation-sets/{world['set'].name}/")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="report-form"' in html
    assert 'name="csrfmiddlewaretoken"' in html.split('id="report-form"')[1]
    assert f'<option value="ns:{world["frozen"].number}">' in html
    assert "<option selected>m1</option>" in html  # the active model is chosen
    assert f'value="{DEFAULT_GROUPS_TEXT}"' in html
    # The internal sites to choose from.
    assert 'value="north"' in html
    assert 'value="south"' in html
    assert f'href="/reports/{report.pk}/"' in html
    assert f"Report {report.pk}</a>: v{world['frozen'].number}, m1 vs m2" in html
