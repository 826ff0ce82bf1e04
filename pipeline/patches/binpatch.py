"""Applying the `GIT binary patch` forms that `git diff --binary` writes.

A binary section carries the blob ids of both sides on its ``index`` line and one deflated
hunk: ``literal`` (the new bytes) or ``delta`` (git's copy/insert delta against the old bytes,
the format of ``patch-delta.c``). As in apply.c's ``apply_binary``, the old bytes must hash to
the old id before anything is done, and the result must hash to the new id.
"""

from __future__ import annotations

import hashlib

NULL_OID = "0" * 40


def blob_id(data: bytes) -> str:
    """The git (SHA-1) object id of a blob with these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class DeltaError(ValueError):
    pass


def _varint(delta: bytes, i: int) -> tuple[int, int]:
    size = shift = 0
    while True:
        if i >= len(delta):
            raise DeltaError("truncated size header")
        c = delta[i]
        i += 1
        size |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return size, i


def apply_delta(src: bytes, delta: bytes) -> bytes:
    """git's ``patch_delta``: a delta is the source size, the result size, then copy
    (high bit set: offset and size bytes as the low bits say) and insert (1-127 literal bytes)
    instructions. Anything out of bounds is an error, never a short result."""
    src_size, i = _varint(delta, 0)
    if src_size != len(src):
        raise DeltaError(f"delta is for a {src_size}-byte source, the file has {len(src)} bytes")
    dst_size, i = _varint(delta, i)
    out = bytearray()
    n = len(delta)
    while i < n:
        cmd = delta[i]
        i += 1
        if cmd & 0x80:
            off = size = 0
            for bit, shift in ((0x01, 0), (0x02, 8), (0x04, 16), (0x08, 24)):
                if cmd & bit:
                    if i >= n:
                        raise DeltaError("truncated copy instruction")
                    off |= delta[i] << shift
                    i += 1
            for bit, shift in ((0x10, 0), (0x20, 8), (0x40, 16)):
                if cmd & bit:
                    if i >= n:
                        raise DeltaError("truncated copy instruction")
                    size |= delta[i] << shift
                    i += 1
            if size == 0:
                size = 0x10000
            if off + size > len(src) or size > dst_size - len(out):
                raise DeltaError("copy instruction out of bounds")
            out += src[off:off + size]
        elif cmd:
            if cmd > dst_size - len(out) or i + cmd > n:
                raise DeltaError("insert instruction out of bounds")
            out += delta[i:i + cmd]
            i += cmd
        else:
            raise DeltaError("unexpected delta opcode 0")
    if len(out) != dst_size:
        raise DeltaError(f"delta result has {len(out)} bytes, expected {dst_size}")
    return bytes(out)
