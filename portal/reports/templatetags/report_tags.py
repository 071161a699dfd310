"""The reports part of other apps' pages: a page of a lower app (a validation set's) loads this
tag by name, so that its view needs no import of the reports app above it (the layers contract
in pyproject.toml)."""

from django import template

from portal.predictions.models import ModelVersion
from portal.reports.models import Report
from portal.reports.services import DEFAULT_GROUPS_TEXT

register = template.Library()


@register.inclusion_tag("reports/_validation_set_reports.html", takes_context=True)
def validation_set_reports(context, validation_set, versions, sites) -> dict:
    """A validation set's page: the form that asks for a report of one of its `versions`
    (pairs of version and export, as the page lists them), its internal `sites` to choose
    from, and the set's latest 20 reports."""
    return {
        "csrf_token": context.get("csrf_token"),
        "set": validation_set,
        "versions": versions,
        "sites": sites,
        "models": ModelVersion.objects.order_by("name"),
        "default_age_groups": DEFAULT_GROUPS_TEXT,
        "reports": Report.objects.filter(version__validation_set=validation_set).select_related(
            "version", "model_version", "compare_version"
        )[:20],
    }
