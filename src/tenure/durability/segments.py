"""Ledger segments: the events a site holds, in immutable, checksummed files.

A segment holds the leaves of events ``first .. first + count - 1`` of one account,
as text:

```
tenure-segment v1
account <account>
first <seq>
count <n>
<leaf of event first>          one RFC 8785 leaf per line (leaves hold no raw newline)
...
end <hex SHA-256 of every byte above this line>
```

It lives at ``<account>/segments/<first, 20 digits>-<end, 20 digits>.seg``, where
end = first + count. Segments are written once, atomically, and never changed: a
site's ledger is the run of segments from 0 with no gap. A segment that fails its
checksum, has the wrong count, or holds an event whose ``seq`` or ``account``
disagrees is refused as a whole. Whether the leaves are the *signed* ledger is
proven separately: the restored tree's root must equal a signed checkpoint's.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import orjson

from tenure.errors import TenureError

MAGIC = b"tenure-segment v1\n"
_NAME = re.compile(r"(?:.*/)?segments/(\d{20})-(\d{20})\.seg")


class BadSegment(TenureError):
    """A segment that is not what it claims to be (truncated, altered, misnamed)."""

    code = "bad_segment"


@dataclass(frozen=True)
class SegmentName:
    first: int
    end: int

    def path(self, account: str) -> str:
        return f"{account}/segments/{self.first:020d}-{self.end:020d}.seg"


def parse_name(path: str) -> SegmentName | None:
    """The range a segment's path names, or None for another kind of object."""
    match = _NAME.fullmatch(path)
    if match is None:
        return None
    first, end = int(match.group(1)), int(match.group(2))
    return SegmentName(first, end) if end > first else None


def encode(account: str, first: int, leaves: list[bytes], magic: bytes = MAGIC) -> bytes:
    """The segment of ``leaves`` (events ``first`` …) of ``account``; an audit
    segment (``tenure.durability.audit_shipping``) has its own ``magic`` line."""
    body = b"".join(
        [
            magic,
            f"account {account}\nfirst {first}\ncount {len(leaves)}\n".encode(),
            *(leaf + b"\n" for leaf in leaves),
        ]
    )
    return body + b"end " + hashlib.sha256(body).hexdigest().encode() + b"\n"


def decode(data: bytes, account: str, name: SegmentName, magic: bytes = MAGIC) -> list[bytes]:
    """The leaves of a segment read back from a site; ``BadSegment`` unless every
    check holds (``magic``, checksum, header, count, each line's seq and account)."""
    tail = data.rfind(b"\nend ")
    if not data.startswith(magic) or tail < 0 or not data.endswith(b"\n"):
        raise BadSegment(f"segment {name.first}-{name.end} of {account} is truncated")
    body, trailer = data[: tail + 1], data[tail + 1 : -1]
    if trailer != b"end " + hashlib.sha256(body).hexdigest().encode():
        raise BadSegment(f"segment {name.first}-{name.end} of {account} fails its checksum")
    lines = body[len(magic) : -1].split(b"\n")
    header = [line.decode("utf-8", "replace") for line in lines[:3]]
    expected = [f"account {account}", f"first {name.first}", f"count {name.end - name.first}"]
    if header != expected or len(lines) - 3 != name.end - name.first:
        raise BadSegment(f"segment {name.first}-{name.end} of {account} has a wrong header")
    leaves = lines[3:]
    for offset, leaf in enumerate(leaves):
        try:
            event = orjson.loads(leaf)
        except orjson.JSONDecodeError:
            event = None
        seq = name.first + offset
        if not isinstance(event, dict) or (event.get("seq"), event.get("account")) != (
            seq,
            account,
        ):
            raise BadSegment(f"segment {name.first}-{name.end} of {account}: event {seq} is wrong")
    return leaves


def contiguous(names: list[SegmentName]) -> list[SegmentName]:
    """The longest run of segments from 0 with no gap, each starting where the one
    before ended. Two shippers (or a retried pass) may leave overlapping ranges;
    what cannot be reached from 0 is not part of the ledger."""
    best: dict[int, list[SegmentName]] = {0: []}
    for name in sorted(names, key=lambda n: (n.first, n.end)):
        path = best.get(name.first)
        if path is not None and name.end not in best:
            best[name.end] = [*path, name]
    return best[max(best)]
