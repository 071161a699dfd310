from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "portal.predictions"
    label = "predictions"
    verbose_name = "Model versions and predictions"
