from django.apps import AppConfig
from django.http import HttpRequest
from django.utils.safestring import SafeString


def _jobs_section(request: HttpRequest) -> SafeString:
    """The views, imported when the Jobs page first renders: at Django's start they would
    import the learning, reports and validation services into every command and worker."""
    from portal.learning.views import jobs_section  # noqa: PLC0415

    return jobs_section(request)


class LearningConfig(AppConfig):
    name = "portal.learning"
    label = "learning"
    verbose_name = "Fine-tuning and recalibration"

    def ready(self) -> None:
        from portal.core import job_sections  # noqa: PLC0415 (apps load before views)

        job_sections.register(_jobs_section)
