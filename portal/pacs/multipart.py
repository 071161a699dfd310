"""multipart/related bodies (RFC 2387), as DICOMweb sends and answers them: read part by part
from a stream without holding the body in memory, and written as a stream of parts."""

import secrets
from collections.abc import Iterable, Iterator
from email.message import Message
from typing import BinaryIO

CHUNK = 1024 * 1024


class MultipartError(ValueError):
    """The body is not the multipart/related it says it is (the reason says how)."""


def content_type_params(header: str) -> tuple[str, dict[str, str]]:
    """A Content-Type header's media type (lower case) and its parameters."""
    message = Message()
    message["Content-Type"] = header or ""
    params = {k.lower(): v for k, v in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


class Part:
    """One part being read: its headers, and `read()` of its body up to the next delimiter."""

    def __init__(self, reader: "_Reader", headers: dict[str, str]) -> None:
        self.headers = headers
        self._reader = reader
        self.done = False  # its body has been read to the delimiter

    @property
    def content_type(self) -> str:
        return content_type_params(self.headers.get("content-type", ""))[0]

    def chunks(self) -> Iterator[bytes]:
        if not self.done:
            yield from self._reader.body_chunks()
            self.done = True


class _Reader:
    """The body read CHUNK bytes at a time into one growing buffer; `_pos` is where the unread
    part starts (what lies before it is dropped now and then, not at every step: a part of a
    few megabytes is then copied once, into the chunk handed out)."""

    def __init__(self, stream: BinaryIO, boundary: str) -> None:
        self._stream = stream
        self._delimiter = b"\r\n--" + boundary.encode("ascii")
        self._buffer = bytearray(b"\r\n")  # a delimiter at the very start is found as any other
        self._pos = 0
        self._eof = False

    def _available(self) -> int:
        return len(self._buffer) - self._pos

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._stream.read(CHUNK)
        if not data:
            self._eof = True
            return False
        if self._pos >= CHUNK:
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data
        return True

    def _take(self, end: int, skip: int = 0) -> bytes:
        """The unread bytes up to `end`, consumed with `skip` bytes after them."""
        chunk = bytes(self._buffer[self._pos : end])
        self._pos = end + skip
        return chunk

    def parts(self) -> Iterator[Part]:
        # The preamble, up to the first delimiter, is ignored.
        for _ in self.body_chunks():
            pass
        while True:
            while self._available() < 2 and self._fill():
                pass
            if self._buffer.startswith(b"--", self._pos):
                return  # the close delimiter
            if not self._buffer.startswith(b"\r\n", self._pos):
                raise MultipartError("a delimiter is not followed by a line break")
            self._pos += 2
            part = Part(self, self._headers())
            yield part
            for _ in part.chunks():  # what the consumer did not read
                pass

    def _headers(self) -> dict[str, str]:
        while self._available() < 2 and self._fill():
            pass
        if self._buffer.startswith(b"\r\n", self._pos):  # no headers at all
            self._pos += 2
            return {}
        while (end := self._buffer.find(b"\r\n\r\n", self._pos)) < 0:
            if self._available() > 64 * 1024 or not self._fill():
                raise MultipartError("a part's headers do not end")
        head = self._take(end, skip=4)
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return headers

    def body_chunks(self) -> Iterator[bytes]:
        """The current part's body, up to (and consuming) the next delimiter."""
        keep = len(self._delimiter)
        while True:
            at = self._buffer.find(self._delimiter, self._pos)
            if at >= 0:
                chunk = self._take(at, skip=keep)
                if chunk:
                    yield chunk
                return
            # Read on before handing out a piece: fewer, larger chunks.
            if not self._eof and self._available() < CHUNK and self._fill():
                continue
            if self._available() > keep:
                yield self._take(len(self._buffer) - keep)
            if not self._fill():
                raise MultipartError("the body ends before its close delimiter")


def read_parts(stream: BinaryIO, content_type: str) -> Iterator[Part]:
    """The parts of a multipart/related body; MultipartError when it is not one."""
    media, params = content_type_params(content_type)
    if media != "multipart/related":
        raise MultipartError(f"expected multipart/related, not {media}")
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 70:
        raise MultipartError("no boundary (or one over 70 characters) in Content-Type")
    return _Reader(stream, boundary).parts()


def write_parts(parts: Iterable[tuple[str, Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """A multipart/related body: each (content type, chunks) as one part."""
    for content_type, chunks in parts:
        yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("ascii")
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("ascii")


def new_boundary() -> str:
    return f"cxr-age-{secrets.token_hex(16)}"
