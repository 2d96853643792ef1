"""UUIDv7 ids, made by the client (DESIGN.md, Data: no temporary ids)."""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> str:
    """A new UUIDv7 as text: time-ordered, so ids sort by creation.

    Within one millisecond a 12-bit counter keeps ids monotonic (RFC 9562, method 1).
    """
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # counter overflow: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
        _last_ms = ms
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand
    h = f"{value:032x}"  # the text form str(uuid.UUID(int=value)) gives, without building the object
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_many(count: int) -> list[str]:
    """``count`` new UUIDv7s in order, as :func:`uuid7` makes them one by one, for bulk writes:
    the counter of one millisecond runs on (borrowing the next millisecond when it overflows)
    and the random bits come from one ``os.urandom`` call."""
    global _last_ms, _counter
    if count <= 0:
        return []
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms, counter = _last_ms, _counter + 1
        else:
            counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
        blocks = []  # (milliseconds, first counter, how many): the counter runs on within one millisecond
        left = count
        while left:
            if counter > 0xFFF:  # counter overflow: borrow the next millisecond
                ms, counter = ms + 1, 0
            size = min(left, 0x1000 - counter)
            blocks.append((ms, counter, size))
            counter += size
            left -= size
        _last_ms, _counter = ms, counter - 1
    # the 8 random bytes of every id from one urandom call, the first of each with the variant bits (10)
    noise = bytearray(os.urandom(8 * count))
    noise[0::8] = noise[0::8].translate(_VARIANT)
    h = noise.hex()
    out: list[str] = []
    i = 0
    for ms, first, size in blocks:
        t = f"{ms & ((1 << 48) - 1):012x}"
        head = f"{t[:8]}-{t[8:]}-7"
        for c in _COUNTERS[first:first + size]:
            out.append(f"{head}{c}-{h[i:i + 4]}-{h[i + 4:i + 16]}")
            i += 16
    return out


#: a random byte -> the same byte with the RFC 9562 variant bits (10) on top
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))
#: the 12-bit counter as three hex digits
_COUNTERS = [f"{c:03x}" for c in range(0x1000)]
