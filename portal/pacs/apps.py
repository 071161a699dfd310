from django.apps import AppConfig


class PacsConfig(AppConfig):
    name = "portal.pacs"
    label = "pacs"
    verbose_name = "PACS intake (DICOM and DICOMweb)"
