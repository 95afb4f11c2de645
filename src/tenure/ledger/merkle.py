"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs over stored subtree hashes.

The store keeps the hash of every *complete* subtree: node ``(level, index)`` covers
leaves ``[index * 2**level, (index + 1) * 2**level)``. Appending a leaf adds the leaf
node and the parents it completes (two rows on average). Any tree hash, inclusion
proof or consistency proof is then a fold over O(log n) stored nodes, read in one
batch through a ``HashReader`` — never a recomputation over all leaves.

Proof generation follows RFC 9162 §2.1.3.1 and §2.1.4.1 (PATH and SUBPROOF); the
verifiers are the iterative algorithms of §2.1.3.2 and §2.1.4.2, written
independently of the generators so that each checks the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from tenure.errors import InvalidProof

HASH_SIZE = 32
NodeId = tuple[int, int]
"""``(level, index)`` of a complete subtree."""

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 ‖ leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class HashReader(Protocol):
    """Reads stored complete-subtree hashes; the one thing proofs need from storage."""

    def read_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """Return the hashes of ``ids`` in order; raise if any is missing."""
        ...


class Frontier:
    """The right edge of a tree: the hashes of its maximal complete subtrees.

    Holds at most log2(n) + 1 hashes, enough to append and to compute the root
    without reading storage.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise InvalidProof(f"frontier of size {size} needs {size.bit_count()} hashes")
        self.size = size
        self.hashes = list(hashes)

    @staticmethod
    def node_ids(size: int) -> list[NodeId]:
        """The stored nodes that make up the frontier of a tree of ``size`` leaves."""
        return subtree_ids(0, size)

    def append(self, leaf_digest: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash; return the new stored nodes ``(level, index, hash)``."""
        index = self.size
        level = 0
        digest = leaf_digest
        created = [(0, index, digest)]
        while index & 1:
            digest = node_hash(self.hashes.pop(), digest)
            level += 1
            index >>= 1
            created.append((level, index, digest))
        self.hashes.append(digest)
        self.size += 1
        return created

    def root(self) -> bytes:
        """The tree hash of the current tree (EMPTY_ROOT for size 0)."""
        return fold_subtrees(self.hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)


def _largest_power_of_two_below(n: int) -> int:
    """Largest k = 2**i with k < n (n ≥ 2): the RFC 9162 split point."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_ids(lo: int, hi: int) -> list[NodeId]:
    """Stored complete subtrees covering leaves ``[lo, hi)``, left to right.

    ``lo`` must be aligned as it is in every range the RFC recursions produce.
    """
    ids: list[NodeId] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        while lo & ((1 << level) - 1):
            level -= 1
        ids.append((level, lo >> level))
        lo += 1 << level
    return ids


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Combine left-to-right complete subtree hashes into the hash of their union."""
    if not hashes:
        return EMPTY_ROOT
    digest = hashes[-1]
    for left in reversed(hashes[:-1]):
        digest = node_hash(left, digest)
    return digest


def _inclusion_ranges(index: int, lo: int, hi: int, out: list[tuple[int, int]]) -> None:
    """Append the leaf ranges whose hashes form PATH(index, D[lo:hi]), leaf first."""
    if hi - lo <= 1:
        return
    k = _largest_power_of_two_below(hi - lo)
    if index < lo + k:
        _inclusion_ranges(index, lo, lo + k, out)
        out.append((lo + k, hi))
    else:
        _inclusion_ranges(index, lo + k, hi, out)
        out.append((lo, lo + k))


def _consistency_ranges(
    old: int, lo: int, hi: int, whole: bool, out: list[tuple[int, int]]
) -> None:
    """Append the leaf ranges of SUBPROOF(old - lo, D[lo:hi], whole), RFC 9162 order."""
    if old == hi:
        if not whole:
            out.append((lo, hi))
        return
    k = _largest_power_of_two_below(hi - lo)
    if old <= lo + k:
        _consistency_ranges(old, lo, lo + k, whole, out)
        out.append((lo + k, hi))
    else:
        _consistency_ranges(old, lo + k, hi, False, out)
        out.append((lo, lo + k))


def _read_ranges(ranges: Sequence[tuple[int, int]], reader: HashReader) -> list[bytes]:
    groups = [subtree_ids(lo, hi) for lo, hi in ranges]
    flat = reader.read_hashes([node for group in groups for node in group])
    proof: list[bytes] = []
    at = 0
    for group in groups:
        proof.append(fold_subtrees(flat[at : at + len(group)]))
        at += len(group)
    return proof


def tree_hash(size: int, reader: HashReader) -> bytes:
    """The root hash of the first ``size`` leaves, from O(log size) stored nodes."""
    if size < 0:
        raise InvalidProof("tree size must not be negative")
    return fold_subtrees(reader.read_hashes(subtree_ids(0, size)))


def root_of(size: int, reader: HashReader) -> bytes:
    """The root of the first ``size`` leaves: ``EMPTY_ROOT`` for none (reading no
    node), else ``tree_hash``."""
    return tree_hash(size, reader) if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, reader: HashReader) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise InvalidProof(f"leaf {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    _inclusion_ranges(index, 0, size, ranges)
    return _read_ranges(ranges, reader)


def consistency_proof(old: int, new: int, reader: HashReader) -> list[bytes]:
    """RFC 9162 consistency proof between tree sizes ``old`` ≤ ``new``.

    The proof is empty when ``old`` is 0 or equals ``new``: every tree extends the
    empty tree, and a tree is consistent with itself.
    """
    if not 0 <= old <= new:
        raise InvalidProof(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    ranges: list[tuple[int, int]] = []
    _consistency_ranges(old, 0, new, True, ranges)
    return _read_ranges(ranges, reader)


def verify_inclusion(
    leaf_digest: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 §2.1.3.2); raise ``InvalidProof`` if it fails."""
    if not 0 <= index < size:
        raise InvalidProof(f"leaf {index} is not in a tree of size {size}")
    fn, sn, digest = index, size - 1, leaf_digest
    for sibling in proof:
        _check_hash(sibling)
        if sn == 0:
            raise InvalidProof("inclusion proof is too long")
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            digest = node_hash(digest, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("inclusion proof is too short")
    if digest != root:
        raise InvalidProof("inclusion proof does not lead to the root")


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check a consistency proof (RFC 9162 §2.1.4.2); raise ``InvalidProof`` if it fails."""
    if not 0 <= old <= new:
        raise InvalidProof(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        if proof:
            raise InvalidProof("consistency proof must be empty")
        if old == new and old_root != new_root:
            raise InvalidProof("equal sizes with different roots")
        return
    if not proof:
        raise InvalidProof("consistency proof is empty")
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    for digest in path:
        _check_hash(digest)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for sibling in path[1:]:
        if sn == 0:
            raise InvalidProof("consistency proof is too long")
        if fn & 1 or fn == sn:
            first = node_hash(sibling, first)
            second = node_hash(sibling, second)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second = node_hash(second, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("consistency proof is too short")
    if first != old_root or second != new_root:
        raise InvalidProof("consistency proof does not match the roots")


def _check_hash(digest: bytes) -> None:
    if len(digest) != HASH_SIZE:
        raise InvalidProof(f"proof hash has {len(digest)} bytes, expected {HASH_SIZE}")
