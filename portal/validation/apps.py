from django.apps import AppConfig


class ValidationConfig(AppConfig):
    name = "portal.validation"
    label = "validation"
    verbose_name = "Validation sets"
