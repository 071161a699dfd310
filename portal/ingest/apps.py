from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "portal.ingest"
    label = "ingest"
    verbose_name = "Sites and ingest"
