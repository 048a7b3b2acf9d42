"""Stream the items of a top-level JSON array without holding the whole file in memory.

Visual Genome's files are arrays of per-image entries of up to hundreds of MB: parsing
them at once costs several GB. Errors are those of ``load_json`` (the file and the line).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scalar.data.readers.common import load_json, require_list
from scalar.data.scene import AnnotationError

CHUNK = 1 << 22  # characters read at a time
_WS = " \t\n\r"
_END = _WS + ",]"


def iter_json_array(path: str | Path, chunk: int = CHUNK) -> Iterator[Any]:
    """Yield the items of the JSON array in ``path`` one by one.

    A file whose top level is not an array gives the ``load_json`` / ``require_list``
    error (``AnnotationError`` naming the file, ``FileNotFoundError`` when missing).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    decode = json.JSONDecoder().raw_decode
    with open(path, encoding="utf-8") as f:
        buf, eof, lines = "", False, 0  # lines: newlines in text dropped from buf

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
        if pos >= len(buf) or buf[pos] != "[":
            yield from require_list(load_json(path), None, path)  # not an array: its error
            return
        pos = skip_ws(pos + 1)
        if pos < len(buf) and buf[pos] == "]":
            pos = skip_ws(pos + 1)
        else:
            while True:
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
