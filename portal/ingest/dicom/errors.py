"""The exception every check raises: a file that ingest refuses, with its reason."""


class Rejected(Exception):
    """A file that ingest refuses, with the reason shown in the upload report."""
