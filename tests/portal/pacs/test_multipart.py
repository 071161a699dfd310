"""The multipart/related reader STOW-RS stores from: every part comes back byte for byte, however
the body arrives (a socket hands it over in pieces of any size, a delimiter may straddle two),
and a body that is not what it says is refused with the reason."""

import io
import random

import pytest

from portal.pacs import multipart
from portal.pacs.multipart import MultipartError, new_boundary, read_parts, write_parts


class Trickle(io.RawIOBase):
    """A body read back in pieces of random size, as a socket gives it."""

    def __init__(self, data: bytes, seed: int, largest: int) -> None:
        self._data, self._at = data, 0
        self._rng, self._largest = random.Random(seed), largest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = min(size if size >= 0 else len(self._data), self._rng.randint(1, self._largest))
        piece = self._data[self._at : self._at + n]
        self._at += len(piece)
        return piece


def _body(parts: list[tuple[str, bytes]], boundary: str, preamble: bytes = b"") -> bytes:
    chunks = write_parts(((kind, [data]) for kind, data in parts), boundary)
    return preamble + b"".join(chunks)


def _read(stream, boundary: str) -> list[tuple[str, bytes]]:
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return [
        (part.content_type, b"".join(part.chunks())) for part in read_parts(stream, content_type)
    ]


@pytest.mark.parametrize(("seed", "largest"), [(1, 7), (2, 4096), (3, 3 * multipart.CHUNK)])
def test_every_part_comes_back_byte_for_byte_however_the_body_arrives(seed, largest):
    boundary = new_boundary()
    rng = random.Random(seed)
    near_misses = b"\r\n--" + boundary[:-1].encode() + b"\r\n--\r\n"
    parts = [
        ("application/dicom", rng.randbytes(rng.choice([0, 1, 100, 70_000, 2_500_000])))
        for _ in range(6)
    ]
    parts.append(("application/dicom", near_misses * 3))  # almost a delimiter, never one
    parts.append(("application/json", b"{}"))
    body = _body(parts, boundary, preamble=b"ignored preamble\r\n")
    assert _read(Trickle(body, seed, largest), boundary) == parts


def test_a_part_without_headers_and_an_empty_body():
    boundary = "b0undary"
    body = (
        b"--b0undary\r\n\r\nno headers\r\n--b0undary\r\nContent-Type: a/b\r\n\r\n\r\n--b0undary--"
    )
    assert _read(io.BytesIO(body), boundary) == [("text/plain", b"no headers"), ("a/b", b"")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"--b0undary\r\nContent-Type: a/b\r\n\r\nno end", "ends before its close delimiter"),
        (b"--b0undary\r\nContent-Type: a/b" + b"x" * 70_000, "headers do not end"),
        (b"--b0undaryX\r\n\r\n", "not followed by a line break"),
    ],
)
def test_a_broken_body_is_refused_with_the_reason(body, reason):
    with pytest.raises(MultipartError, match=reason):
        _read(io.BytesIO(body), "b0undary")


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [("application/dicom", "expected multipart/related"), ("multipart/related", "no boundary")],
)
def test_a_body_that_is_not_multipart_related_is_refused(content_type, reason):
    with pytest.raises(MultipartError, match=reason):
        read_parts(io.BytesIO(b""), content_type)
