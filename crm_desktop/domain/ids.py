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
        stamps = []
        for _ in range(count):
            if counter > 0xFFF:
                ms, counter = ms + 1, 0
            stamps.append(((ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62))
            counter += 1
        _last_ms, _counter = ms, counter - 1
    noise = os.urandom(8 * count)
    mask = (1 << 62) - 1
    out = []
    for i, stamp in enumerate(stamps):
        h = f"{stamp | (int.from_bytes(noise[8 * i:8 * i + 8], 'big') & mask):032x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out
