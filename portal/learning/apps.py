from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "portal.learning"
    label = "learning"
    verbose_name = "Fine-tuning and recalibration"

    def ready(self) -> None:
        from portal.core import job_sections  # noqa: PLC0415 (apps load before views)
        from portal.learning.views import jobs_section  # noqa: PLC0415

        job_sections.register(jobs_section)
