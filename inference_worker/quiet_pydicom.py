"""pydicom's warnings and log messages never reach a log or stderr: they quote the path of the
file being read ("... in file /srv/staging/12/0000003.dcm", an operator's folder named after a
patient) and tag values (PHI). The one home of that rule, for every process that reads DICOM:
the portal's web, CLI and Celery processes (Django's `LOGGING_CONFIG`), ingest's worker
processes and the inference worker (imported by the modules that read DICOM).

pydicom reports a problem both ways, `warnings.warn` and the "pydicom" logger (`warn_and_log`).
Its warnings are ignored process-wide; its log records go to `Collector`, which never prints:
it hands them to a caller that asked for them (`collecting`), which may turn them into a
reason in its own words, and drops them otherwise. Plain Python: the portal imports it.
"""

import logging
import logging.config
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER = "pydicom"
# The module a warning is attributed to: every pydicom module (its own `warnings.warn` calls and
# numpy's warnings about arrays pydicom computes).
_PYDICOM_MODULES = r"pydicom(\..*)?$"
_local = threading.local()


class Collector(logging.Handler):
    """The "pydicom" logger's only handler: keeps a record's message for the thread that logged
    it while that thread is `collecting`, and drops it otherwise. Logging runs in the logging
    thread, so each thread sees its own messages, and nothing global changes per read (as
    `warnings.catch_warnings` would, unsafely, in the threads of a Celery worker)."""

    def emit(self, record: logging.LogRecord) -> None:
        sink: list[str] | None = getattr(_local, "sink", None)
        if sink is not None:
            sink.append(record.getMessage())


def install() -> None:
    """Silence pydicom in this process (any number of calls): its logger keeps warnings and
    errors for `Collector` alone, never passing them to the root's handlers; its warnings are
    ignored, whatever `logging.captureWarnings` (Celery's) or the default filters would do."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    for handler in list(logger.handlers):
        if not isinstance(handler, Collector):
            logger.removeHandler(handler)
    if not logger.handlers:
        logger.addHandler(Collector())
    warnings.filterwarnings("ignore", module=_PYDICOM_MODULES)


def configure_logging(config: dict) -> None:
    """Django's `LOGGING_CONFIG`: `dictConfig(LOGGING)`, then `install()`, in every process that
    loads the portal's settings (web, `manage.py`, Celery worker and beat)."""
    logging.config.dictConfig(config)
    install()


@contextmanager
def collecting() -> Iterator[list[str]]:
    """The messages pydicom logs in this thread meanwhile. They may quote a path or a value:
    for matching only, never for a log, an error or a report."""
    outer = getattr(_local, "sink", None)
    _local.sink = sink = []
    try:
        yield sink
    finally:
        _local.sink = outer
        if outer is not None:
            outer.extend(sink)
