from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "portal.core"
    label = "core"

    def ready(self) -> None:
        from django.core import checks

        from portal.core.proxies import proxy_settings_check

        checks.register(proxy_settings_check)
        # The Celery app, in every process that starts Django (not in `portal`: see there),
        # so that the tasks' `shared_task`s bind to it.
        import portal.celery  # noqa: F401, PLC0415
