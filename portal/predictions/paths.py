"""Defence in depth against server paths in stored and served error messages: the workers are
told never to send one, but a message from a library (pydicom, torch, the OS) may quote a file
it failed on, and a path names the server's layout (issue 9)."""

import re

# An absolute POSIX path (a slash that starts a word, followed by at least one character) or a
# Windows drive path; URLs (`scheme://`) and relative paths (`images/ab.dcm`) do not match.
_ABSOLUTE_PATH = re.compile(r"""(?<![\w:/.~-])(?:/|[A-Za-z]:\\)[^\s'"<>]*[^\s'"<>.,:;)\]]""")
PLACEHOLDER = "<path>"


def strip_server_paths(text: str) -> str:
    """`text` with every absolute path replaced by `<path>`."""
    return _ABSOLUTE_PATH.sub(PLACEHOLDER, text) if text else text
