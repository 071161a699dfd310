"""Django's "json" serialization format (dumpdata, loaddata, and so backups and restores) with
every timestamp whole: Django's encoder cuts datetimes and times to milliseconds, so a restored
portal's decisions and audit events would carry other times than the ones recorded.
`settings.SERIALIZATION_MODULES` puts it in the place of Django's; it reads what Django's
wrote (a backup made before it loads as it always did)."""

import datetime

from django.core.serializers.json import Deserializer, DjangoJSONEncoder
from django.core.serializers.json import Serializer as DjangoSerializer

__all__ = ["Deserializer", "ExactJSONEncoder", "Serializer"]


class ExactJSONEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder, with a datetime's and a time's microseconds kept."""

    def default(self, o: object) -> object:
        if isinstance(o, datetime.datetime):
            text = o.isoformat()
            return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
        if isinstance(o, datetime.time) and o.utcoffset() is None:
            return o.isoformat()
        return super().default(o)


class Serializer(DjangoSerializer):
    def _init_options(self) -> None:
        super()._init_options()
        if self.json_kwargs["cls"] is DjangoJSONEncoder:  # unless a caller chose another
            self.json_kwargs["cls"] = ExactJSONEncoder
