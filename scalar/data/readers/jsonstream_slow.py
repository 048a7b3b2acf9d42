"""The standard library's item-by-item path of ``jsonstream``, which names the line of an error.

``jsonstream`` hands over to it from the start of a file, or just after a top-level ','
when its fast path cannot go on; the items and errors are then those of ``json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from scalar.data.readers.common import load_json, require_list
from scalar.data.scene import AnnotationError

_WS = " \t\n\r"
_END = _WS + ",]"


def count_lines(f, end: int) -> int:
    """Line breaks in the first ``end`` bytes of binary file ``f``, counted as text mode
    does (``\\n``, ``\\r\\n`` and a lone ``\\r`` each end a line)."""
    f.seek(0)
    lines, left, prev = 0, end, b""
    while left > 0:
        data = f.read(min(left, 1 << 22))
        if not data:
            break
        left -= len(data)
        lines += data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
        lines -= prev == b"\r" and data[:1] == b"\n"
        prev = data[-1:]
    return lines


def iter_slow(f: TextIO, path: Path, chunk: int, lines: int, first: bool) -> Iterator[Any]:
    """Yield the array items of text file ``f`` with ``json``'s decoder.

    ``first``: ``f`` is at the start of the file; else just after a top-level ',' (an item
    must follow), with ``lines`` line breaks before it.
    """
    decode = json.JSONDecoder().raw_decode
    buf, eof = "", False

    def more(pos: int, need: int) -> tuple[str, int]:
        nonlocal buf, eof, lines
        lines += buf.count("\n", 0, pos)
        text = f.read(max(chunk, need))
        eof = not text
        buf = buf[pos:] + text
        return buf, 0

    def fail(pos: int, msg: str) -> AnnotationError:
        line = lines + buf.count("\n", 0, pos) + 1
        return AnnotationError(path, f"line {line}", f"not valid JSON ({msg})")

    def skip_ws(pos: int) -> int:
        while True:
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            if pos < len(buf) or eof:
                return pos
            _, pos = more(pos, 0)

    pos = skip_ws(0)
    empty = False
    if first:
        if pos >= len(buf) or buf[pos] != "[":
            yield from require_list(load_json(path), None, path)  # not an array: its error
            return
        pos = skip_ws(pos + 1)
        if pos < len(buf) and buf[pos] == "]":
            pos, empty = skip_ws(pos + 1), True
    while not empty:
        while True:  # an item, complete only when a delimiter follows it
            try:  # ("12" of "12.5" decodes, so does "12." of "12.5e3")
                item, end = decode(buf, pos)
                if eof or (end < len(buf) and buf[end] in _END):
                    break
            except json.JSONDecodeError as e:
                if eof:
                    raise fail(e.pos, e.msg) from None
            _, pos = more(pos, 2 * (len(buf) - pos))
        yield item
        pos = skip_ws(end)
        if pos >= len(buf):
            raise fail(pos, "Expecting ',' delimiter or ']'")
        if buf[pos] == "]":
            pos = skip_ws(pos + 1)
            break
        if buf[pos] != ",":
            raise fail(pos, "Expecting ',' delimiter")
        pos = skip_ws(pos + 1)
    if pos < len(buf):
        raise fail(pos, "Extra data")
