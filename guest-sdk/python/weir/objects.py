"""Object storage through the host: the store (an S3 bucket and prefix, or a directory)
the pipeline grants (`grants.objects`). Keys are relative to the granted prefix and cannot
leave it; the credentials stay in the host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

from weir._host import call, needs, wit_objects


@dataclass
class ObjectInfo:
    key: str
    size: int
    #: Changes whenever the content does (S3's ETag; for a directory, from size and time).
    etag: Optional[str]
    last_modified_ms: int


def list(prefix: str = "", start_after: Optional[str] = None, max: int = 1000) -> "list[ObjectInfo]":
    """Objects whose keys start with `prefix` and sort after `start_after`, in key order."""
    found = call(needs(wit_objects, "objects").list, prefix, start_after, max)
    return [ObjectInfo(o.key, o.size, o.etag, o.last_modified_ms) for o in found]


def walk(prefix: str = "", page: int = 1000) -> Iterator[ObjectInfo]:
    """Every object under `prefix`, listed a page at a time."""
    after = None
    while True:
        found = list(prefix, after, page)
        yield from found
        if len(found) < page:
            return
        after = found[-1].key


def read(key: str, offset: int = 0, length: int = 4 << 20) -> bytes:
    """Bytes `offset .. offset + length` of an object (fewer at its end)."""
    return call(needs(wit_objects, "objects").read, key, offset, length)


def read_all(key: str, piece: int = 4 << 20) -> bytes:
    """A whole object, read `piece` bytes at a time."""
    parts = []
    offset = 0
    while True:
        part = read(key, offset, piece)
        parts.append(part)
        offset += len(part)
        if len(part) < piece:
            return b"".join(parts)


def write(key: str, data: bytes) -> None:
    """Writes a whole object, replacing any of that key; durable when it returns."""
    call(needs(wit_objects, "objects").write, key, bytes(data))
