from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "portal.core"
    label = "core"

    def ready(self) -> None:
        from django.core import checks

        from portal.core.proxies import proxy_settings_check

        checks.register(proxy_settings_check)
