"""Stream the items of a top-level JSON array without holding the whole file in memory.

Visual Genome's files are arrays of per-image entries of up to hundreds of MB: parsing
them at once costs several GB. The file is read in chunks of bytes; each chunk is cut after
its last complete item and the items before the cut are decoded at once by orjson (about
twice as fast as the standard library). Anything that path cannot vouch for (a cut it
cannot find, text orjson rejects, an integer too long for orjson's 64 bits) goes to the
standard library's decoder: the same items, and for malformed files the errors of
``load_json`` (the file and the line) from ``jsonstream_slow``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scalar.data.readers.jsonstream_slow import count_lines, iter_slow

try:
    import orjson
except ImportError:  # pragma: no cover - a declared dependency; the slow path still reads
    orjson = None

CHUNK = 1 << 22  # bytes read at a time
_WS = b" \t\n\r"
_STEPS = 4096  # closers the counting guess walks back over before giving up
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{\[]|[}\]]')
_DIGIT = bytes(48 if 48 <= i < 58 else 32 for i in range(256))  # digits to "0", rest " "
_LONG = re.compile(rb"[0-9]{19}")


def iter_json_array(path: str | Path, chunk: int = CHUNK) -> Iterator[Any]:
    """Yield the items of the JSON array in ``path`` one by one.

    A file whose top level is not an array gives the ``load_json`` / ``require_list``
    error (``AnnotationError`` naming the file, ``FileNotFoundError`` when missing).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, "rb") as f:
        resume = 0 if orjson is None else (yield from _fast(f, chunk))
        if resume is None:
            return
        lines = count_lines(f, resume)
        f.seek(resume)
        text = io.TextIOWrapper(f, encoding="utf-8")
        yield from iter_slow(text, path, chunk, lines, first=resume == 0)


def _fast(f, chunk: int):
    """Yield items while cuts are found and decode; return None when the array ended well,
    else the byte offset (0, or just after a top-level ',') the slow path resumes at."""
    buf, base, eof = b"", 0, False

    def fill(start: int) -> None:
        nonlocal buf, base, eof
        want = max(chunk, len(buf) - start)
        data = f.read(want)
        eof = len(data) < want
        buf, base = buf[start:] + data, base + start

    fill(0)
    start = len(buf) - len(buf.lstrip(_WS))
    if start >= len(buf) or buf[start] != 0x5B:  # "[": anything else is the slow path's
        return 0
    start += 1
    resume, mode = 0, 0  # mode: 0 signature guess, 1 counting guess, 2 exact scan
    while True:
        found = (_guess_signature, _guess_counts, _exact)[mode](buf, start)
        if found is None:
            if mode == 0 or (mode == 1 and eof):
                mode += 1
            elif not eof:  # an item longer than the buffer: read on
                fill(start)
                start, mode = 0, 0
            else:
                return resume
            continue
        cut, delim = found
        items = _decode(buf[start:cut], strict_only=mode < 2)
        if items is None:
            if mode == 2:
                return resume
            mode += 1
            continue
        if buf[delim] == 0x5D and not _only_ws_left(f, buf, delim + 1):  # "]" then junk
            return resume
        yield from items
        del items
        if buf[delim] == 0x5D:
            return None
        start, mode, resume = delim + 1, 0, base + delim + 1


def _decode(piece: bytes, strict_only: bool) -> list | None:
    """The items of ``piece`` (a comma-separated run of items), or None when it does not
    decode. Integers of 19+ digits, which orjson would turn into floats, and text that
    orjson rejects but the standard library reads (NaN, lone surrogates) use the latter,
    except when ``strict_only`` (the cut is a guess: a failure is more likely the cut's)."""
    if not _long_digits(piece):
        try:
            return orjson.loads(b"[" + piece + b"]")
        except orjson.JSONDecodeError:
            if strict_only:
                return None
    try:
        return json.loads("[" + piece.decode("utf-8") + "]")
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return None


def _long_digits(piece: bytes) -> bool:
    """True when ``piece`` holds a run of 19 or more digits.

    Any such run covers four consecutive bytes of every 4th byte, so only the places
    where a sample of every 4th byte shows four digits in a row are searched."""
    sample = piece[::4].translate(_DIGIT)
    i = sample.find(b"0000")
    while i >= 0:
        if _LONG.search(piece, max(0, 4 * i - 20), 4 * i + 40):
            return True
        i = sample.find(b"0000", i + 1)
    return False


def _after_ws(buf: bytes, i: int) -> int:
    n = len(buf)
    while i < n and buf[i] in _WS:
        i += 1
    return i


def _cut_at(buf: bytes, close: int) -> tuple[int, int] | None:
    """``(cut, delimiter)`` when the closer at ``close`` is followed by ',' or ']'."""
    d = _after_ws(buf, close + 1)
    if d < len(buf) and buf[d] in b",]":
        return close + 1, d
    return None


def _guess_signature(buf: bytes, start: int) -> tuple[int, int] | None:
    """Cut before the last item that opens like the first one does (``{"image_id"``):
    machine-written files repeat their top-level key order, rows inside rarely share it."""
    i = _after_ws(buf, start)
    if buf[i : i + 2] != b'{"':
        return None
    end = buf.find(b'"', i + 2)
    if end < 0:
        return None
    sig = buf[i : end + 1]
    at = buf.rfind(sig, i + 1)
    while at > i:
        j = at - 1
        while j > i and buf[j] in _WS:
            j -= 1
        if buf[j] == 0x2C:  # ","
            k = j - 1
            while k > i and buf[k] in _WS:
                k -= 1
            if buf[k] in b"}]":
                return k + 1, j
        at = buf.rfind(sig, i + 1, at)
    return None


def _guess_counts(buf: bytes, start: int) -> tuple[int, int] | None:
    """The last closer where bracket counts (blind to strings) come back to the top."""
    count = buf.count
    depth = count(b"{", start) + count(b"[", start) - count(b"}", start) - count(b"]", start)
    p, qb, qk = len(buf), buf.rfind(b"}", start), buf.rfind(b"]", start)
    for _ in range(_STEPS):
        q = max(qb, qk)
        if q < 0:
            return None
        depth -= count(b"{", q + 1, p) + count(b"[", q + 1, p)  # depth just after q
        if depth == 0 and count(b'"', start, q) % 2 == 0:
            found = _cut_at(buf, q)
            if found is not None:
                return found
        depth, p = depth + 1, q
        if q == qb:
            qb = buf.rfind(b"}", start, q)
        else:
            qk = buf.rfind(b"]", start, q)
    return None


def _exact(buf: bytes, start: int) -> tuple[int, int] | None:
    """The last top-level cut, found by scanning strings and brackets token by token."""
    depth, last = 0, None
    for m in _TOKEN.finditer(buf, start):
        c = buf[m.start()]
        if c == 0x22:  # a string
            continue
        if c in b"{[":
            depth += 1
            continue
        depth -= 1
        if depth < 0:  # the array's own "]"
            break
        if depth == 0:
            last = _cut_at(buf, m.start()) or last
    return last


def _only_ws_left(f, buf: bytes, i: int) -> bool:
    """True when nothing but whitespace follows ``buf[i:]`` to the end of the file."""
    if buf[i:].strip(_WS):
        return False
    pos = f.tell()
    while True:
        data = f.read(CHUNK)
        if not data:
            f.seek(pos)
            return True
        if data.strip(_WS):
            f.seek(pos)
            return False
