"""The data folder's sub-folders and serving stored files: paths in the database are relative
to the data folder."""

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404


def data_folder(name: str) -> Path:
    """`name` under the data folder, created if it is missing: a fresh clone, a new volume or a
    swept folder has none of them, so a writer asks for its folder here instead of assuming
    that an earlier step made it."""
    path = settings.DATA_DIR / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def stored_file_response(relative: str, content_type: str) -> FileResponse:
    """The file at `relative` under the data folder; 404 if it is missing or escapes it."""
    root = settings.DATA_DIR.resolve()
    path = (settings.DATA_DIR / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Http404("file not found")
    return FileResponse(path.open("rb"), content_type=content_type)
