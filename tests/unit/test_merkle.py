"""Merkle tree hashing and proofs, checked against a naive RFC 6962 / RFC 9162 reference.

The reference below transcribes the recursive definitions of RFC 9162 §2.1.1 (MTH),
§2.1.3.1 (PATH) and §2.1.4.1 (PROOF / SUBPROOF) literally, over the raw leaf data,
without any of the stored-subtree machinery of ``tenure.ledger.merkle``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tenure.errors import InvalidProof
from tenure.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    Frontier,
    NodeId,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------- naive reference (RFC 9162)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1."""
    n = len(leaves)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + leaves[0])
    k = _split(n)
    return _sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if whole else [ref_mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], whole), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def ref_proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1."""
    return ref_subproof(m, leaves, True)


# ---------------------------------------------------------------- in-memory store


class MemoryHashes:
    """A HashReader over the nodes a Frontier creates as leaves are appended."""

    def __init__(self) -> None:
        self.frontier = Frontier()
        self.nodes: dict[NodeId, bytes] = {}
        self.reads: list[NodeId] = []

    def append(self, leaf: bytes) -> None:
        for level, index, digest in self.frontier.append(leaf_hash(leaf)):
            assert (level, index) not in self.nodes, "a node is stored twice"
            self.nodes[(level, index)] = digest

    def read_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        self.reads.extend(ids)
        return [self.nodes[node] for node in ids]  # KeyError: node never stored


def make_leaves(size: int) -> list[bytes]:
    """Distinct leaves (so that no two subtrees share a hash) of varying lengths."""
    return list(_LEAVES[:size])


_LEAVES = tuple(f"leaf {i}".encode() * (i % 3) + i.to_bytes(4, "big") for i in range(1100))


def build(leaves: Sequence[bytes]) -> MemoryHashes:
    store = MemoryHashes()
    for leaf in leaves:
        store.append(leaf)
    return store


def _flip(digest: bytes, bit: int) -> bytes:
    data = bytearray(digest)
    data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
    return bytes(data)


# ---------------------------------------------------------------- strategies

EDGE_SIZES = sorted(
    {s for p in range(9) for s in (2**p - 1, 2**p, 2**p + 1)} | {0, 1, 2, 3, 5, 6, 7, 100}
)
MAX_SIZE = max(EDGE_SIZES)


def sizes(min_size: int = 0) -> st.SearchStrategy[int]:
    """Tree sizes: 0, 1, powers of two and their neighbours, and anything up to MAX_SIZE."""
    return st.one_of(
        st.sampled_from([s for s in EDGE_SIZES if s >= min_size]),
        st.integers(min_value=min_size, max_value=MAX_SIZE),
    )


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(sizes(min_size=1))
    index = draw(
        st.one_of(
            st.sampled_from([0, size - 1, size // 2, (size - 1) // 2]),
            st.integers(min_value=0, max_value=size - 1),
        )
    )
    return size, index


@st.composite
def old_and_new(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(sizes(min_size=0))
    old = draw(
        st.one_of(
            st.sampled_from(sorted({s for s in EDGE_SIZES if s <= new} | {new, new - 1} - {-1})),
            st.integers(min_value=0, max_value=new),
        )
    )
    return old, new


@st.composite
def proper_old_and_new(draw: st.DrawFn) -> tuple[int, int]:
    """0 < old < new: the sizes for which a consistency proof is non-trivial."""
    new = draw(sizes(min_size=2))
    old = draw(
        st.one_of(
            st.sampled_from(sorted({s for s in EDGE_SIZES if 0 < s < new} | {new - 1})),
            st.integers(min_value=1, max_value=new - 1),
        )
    )
    return old, new


FAST = settings(max_examples=40, deadline=None)

# ---------------------------------------------------------------- known-answer vectors

# The RFC 6962 test corpus of certificate-transparency / transparency-dev/merkle
# (testonly/constants.go): leaf inputs, the roots of every prefix, and sample proofs.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    assert tree_hash(0, MemoryHashes()).hex() == CT_ROOTS[0]
    assert Frontier().root().hex() == CT_ROOTS[0]


def test_leaf_hash_of_empty_string_matches_rfc6962_vector() -> None:
    assert leaf_hash(b"").hex() == CT_ROOTS[1]


def test_node_hash_prefixes_0x01_to_both_children() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(left, right) == _sha256(b"\x01" + left + right)


@pytest.mark.parametrize("size", range(len(CT_ROOTS)))
def test_roots_of_the_ct_corpus_match_the_published_vectors(size: int) -> None:
    store = build(CT_LEAVES)
    assert tree_hash(size, store).hex() == CT_ROOTS[size]
    assert ref_mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size]
    assert build(CT_LEAVES[:size]).frontier.root().hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), CT_INCLUSION)
def test_inclusion_proofs_of_the_ct_corpus_match_the_published_vectors(
    index: int, size: int, expected: list[str]
) -> None:
    store = build(CT_LEAVES[:size])
    proof = inclusion_proof(index, size, store)
    assert [h.hex() for h in proof] == expected
    root = bytes.fromhex(CT_ROOTS[size])
    verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, proof, root)


@pytest.mark.parametrize(("old", "new", "expected"), CT_CONSISTENCY)
def test_consistency_proofs_of_the_ct_corpus_match_the_published_vectors(
    old: int, new: int, expected: list[str]
) -> None:
    store = build(CT_LEAVES[:new])
    proof = consistency_proof(old, new, store)
    assert [h.hex() for h in proof] == expected
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    verify_consistency(old, new, old_root, new_root, proof)


# ---------------------------------------------------------------- tree hashes and the frontier


@FAST
@given(leaves=st.lists(st.binary(max_size=40), max_size=70))
def test_tree_hash_of_arbitrary_leaves_equals_reference_mth(leaves: list[bytes]) -> None:
    store = build(leaves)
    assert tree_hash(len(leaves), store) == ref_mth(leaves)
    assert store.frontier.root() == ref_mth(leaves)


@FAST
@given(old_new=old_and_new())
def test_tree_hash_of_every_earlier_size_equals_reference_mth(old_new: tuple[int, int]) -> None:
    old, new = old_new
    leaves = make_leaves(new)
    store = build(leaves)
    assert tree_hash(old, store) == ref_mth(leaves[:old])
    assert tree_hash(new, store) == ref_mth(leaves)


@FAST
@given(size=sizes())
def test_tree_hash_reads_only_logarithmically_many_stored_nodes(size: int) -> None:
    store = build(make_leaves(size))
    tree_hash(size, store)
    assert len(store.reads) == size.bit_count()


@FAST
@given(size=sizes())
def test_every_stored_node_is_the_reference_hash_of_its_complete_subtree(size: int) -> None:
    leaves = make_leaves(size)
    store = build(leaves)
    assert len(store.nodes) == 2 * size - size.bit_count()
    for (level, index), digest in store.nodes.items():
        lo, hi = index << level, (index + 1) << level
        assert hi <= size
        assert digest == ref_mth(leaves[lo:hi])


@FAST
@given(size=sizes())
def test_frontier_root_after_each_append_equals_reference_mth(size: int) -> None:
    leaves = make_leaves(size)
    frontier = Frontier()
    for n, leaf in enumerate(leaves, start=1):
        created = frontier.append(leaf_hash(leaf))
        assert frontier.size == n
        assert len(frontier.hashes) == n.bit_count()
        # The new nodes are the leaf and the complete subtrees it finishes, bottom-up.
        assert [(level, index) for level, index, _ in created] == [
            (level, (n - 1) >> level) for level in range(len(created))
        ]
        assert ((n >> (len(created) - 1)) & 1) == 1
    assert frontier.root() == ref_mth(leaves)


@FAST
@given(size=sizes())
def test_frontier_can_be_rebuilt_from_its_stored_node_ids(size: int) -> None:
    leaves = make_leaves(size)
    store = build(leaves)
    ids = Frontier.node_ids(size)
    rebuilt = Frontier(size, store.read_hashes(ids))
    assert rebuilt.hashes == store.frontier.hashes
    assert rebuilt.root() == ref_mth(leaves)
    extra = b"one more"
    rebuilt.append(leaf_hash(extra))
    assert rebuilt.root() == ref_mth([*leaves, extra])


def test_frontier_copy_is_independent_of_the_original() -> None:
    frontier = build(make_leaves(5)).frontier
    before = frontier.root()
    copy = frontier.copy()
    copy.append(leaf_hash(b"x"))
    assert frontier.size == 5
    assert frontier.root() == before
    assert copy.root() == ref_mth([*make_leaves(5), b"x"])


@pytest.mark.parametrize(("size", "count"), [(0, 1), (1, 0), (3, 1), (4, 2), (7, 2)])
def test_frontier_with_the_wrong_number_of_hashes_is_refused(size: int, count: int) -> None:
    with pytest.raises(InvalidProof):
        Frontier(size, [EMPTY_ROOT] * count)


def test_negative_tree_size_is_refused() -> None:
    with pytest.raises(InvalidProof):
        tree_hash(-1, MemoryHashes())


# ---------------------------------------------------------------- inclusion proofs


@FAST
@given(case=size_and_index())
def test_inclusion_proof_equals_reference_path_and_verifies(case: tuple[int, int]) -> None:
    size, index = case
    leaves = make_leaves(size)
    store = build(leaves)
    proof = inclusion_proof(index, size, store)
    assert proof == ref_path(index, leaves)
    assert all(len(h) == HASH_SIZE for h in proof)
    verify_inclusion(leaf_hash(leaves[index]), index, size, proof, ref_mth(leaves))
    # O(log n) stored nodes read, never one per leaf.
    assert len(store.reads) <= 2 * size.bit_length()


@FAST
@given(case=size_and_index(), extra=st.integers(min_value=0, max_value=40))
def test_inclusion_proof_for_an_earlier_tree_size_comes_from_a_larger_store(
    case: tuple[int, int], extra: int
) -> None:
    size, index = case
    leaves = make_leaves(size + extra)
    store = build(leaves)
    proof = inclusion_proof(index, size, store)
    assert proof == ref_path(index, leaves[:size])
    verify_inclusion(leaf_hash(leaves[index]), index, size, proof, ref_mth(leaves[:size]))


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (5, 5), (-1, 3), (9, 8)])
def test_inclusion_proof_for_a_leaf_outside_the_tree_is_refused(index: int, size: int) -> None:
    store = build(make_leaves(max(size, 0)))
    with pytest.raises(InvalidProof):
        inclusion_proof(index, size, store)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (-1, 3), (8, 8)])
def test_verify_inclusion_refuses_a_leaf_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(b""), index, size, [], EMPTY_ROOT)


@st.composite
def inclusion_case(draw: st.DrawFn) -> tuple[int, int, list[bytes], list[bytes], bytes]:
    size, index = draw(size_and_index())
    leaves = make_leaves(size)
    proof = inclusion_proof(index, size, build(leaves))
    return size, index, leaves, proof, ref_mth(leaves)


@FAST
@given(case=inclusion_case(), data=st.data())
def test_tampered_inclusion_proof_with_a_flipped_bit_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes], bytes], data: st.DataObject
) -> None:
    size, index, leaves, proof, root = case
    assume(proof)
    at = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 8 * HASH_SIZE - 1))
    bad = [*proof]
    bad[at] = _flip(bad[at], bit)
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(leaves[index]), index, size, bad, root)


@FAST
@given(case=inclusion_case(), data=st.data())
def test_inclusion_proof_with_a_hash_dropped_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes], bytes], data: st.DataObject
) -> None:
    size, index, leaves, proof, root = case
    assume(proof)
    at = data.draw(st.integers(0, len(proof) - 1))
    bad = proof[:at] + proof[at + 1 :]
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(leaves[index]), index, size, bad, root)


@FAST
@given(case=inclusion_case(), data=st.data())
def test_inclusion_proof_with_a_hash_added_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes], bytes], data: st.DataObject
) -> None:
    size, index, leaves, proof, root = case
    at = data.draw(st.integers(0, len(proof)))
    extra = data.draw(st.sampled_from([root, leaf_hash(leaves[index]), EMPTY_ROOT, *proof]))
    bad = [*proof[:at], extra, *proof[at:]]
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(leaves[index]), index, size, bad, root)


@FAST
@given(case=inclusion_case(), data=st.data())
def test_inclusion_proof_presented_for_the_wrong_index_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes], bytes], data: st.DataObject
) -> None:
    size, index, leaves, proof, root = case
    assume(size > 1)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(leaves[index]), other, size, proof, root)
    # Nor does the proof of one leaf prove another leaf at its own index.
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(leaves[other]), index, size, proof, root)


@FAST
@given(case=inclusion_case(), data=st.data())
def test_inclusion_proof_presented_for_the_wrong_tree_size_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes], bytes], data: st.DataObject
) -> None:
    size, index, leaves, proof, _root = case
    other = data.draw(
        st.one_of(
            st.sampled_from([size - 1, size + 1, 2 * size, size // 2]),
            st.integers(1, MAX_SIZE + 1),
        ).filter(lambda s: s != size and s > index)
    )
    other_leaves = make_leaves(other)
    # The proof is checked against the genuine root of the claimed size.
    assume(ref_path(index, other_leaves) != proof)
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(leaves[index]), index, other, proof, ref_mth(other_leaves))


@FAST
@given(case=inclusion_case(), bit=st.integers(0, 8 * HASH_SIZE - 1))
def test_inclusion_proof_against_the_wrong_root_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes], bytes], bit: int
) -> None:
    size, index, leaves, proof, root = case
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(leaves[index]), index, size, proof, _flip(root, bit))
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(leaves[index]), index, size, proof, ref_mth(leaves[:-1]))


@FAST
@given(case=inclusion_case(), data=st.data())
def test_inclusion_proof_with_a_hash_of_the_wrong_length_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes], bytes], data: st.DataObject
) -> None:
    size, index, leaves, proof, root = case
    assume(proof)
    at = data.draw(st.integers(0, len(proof) - 1))
    bad = [*proof]
    bad[at] = data.draw(st.sampled_from([bad[at][:-1], bad[at] + b"\x00", b"", bad[at] * 2]))
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf_hash(leaves[index]), index, size, bad, root)


@FAST
@given(case=inclusion_case(), bit=st.integers(0, 8 * HASH_SIZE - 1))
def test_inclusion_proof_for_a_different_leaf_hash_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes], bytes], bit: int
) -> None:
    size, index, leaves, proof, root = case
    with pytest.raises(InvalidProof):
        verify_inclusion(_flip(leaf_hash(leaves[index]), bit), index, size, proof, root)
    # The raw leaf bytes are not the leaf hash.
    with pytest.raises(InvalidProof):
        verify_inclusion(_sha256(leaves[index]), index, size, proof, root)


# ---------------------------------------------------------------- consistency proofs


@FAST
@given(case=old_and_new())
def test_consistency_proof_equals_reference_proof_and_verifies(case: tuple[int, int]) -> None:
    old, new = case
    leaves = make_leaves(new)
    store = build(leaves)
    proof = consistency_proof(old, new, store)
    if 0 < old < new:
        assert proof == ref_proof(old, leaves)
    else:
        assert proof == []
    assert len(store.reads) <= 2 * new.bit_length()
    verify_consistency(old, new, ref_mth(leaves[:old]), ref_mth(leaves), proof)


@FAST
@given(case=old_and_new(), extra=st.integers(min_value=0, max_value=40))
def test_consistency_proof_between_earlier_sizes_comes_from_a_larger_store(
    case: tuple[int, int], extra: int
) -> None:
    old, new = case
    leaves = make_leaves(new + extra)
    proof = consistency_proof(old, new, build(leaves))
    assert proof == (ref_proof(old, leaves[:new]) if 0 < old < new else [])
    verify_consistency(old, new, ref_mth(leaves[:old]), ref_mth(leaves[:new]), proof)


@pytest.mark.parametrize(("old", "new"), [(1, 0), (5, 4), (-1, 3), (-2, -1)])
def test_consistency_proof_between_impossible_sizes_is_refused(old: int, new: int) -> None:
    store = build(make_leaves(8))
    with pytest.raises(InvalidProof):
        consistency_proof(old, new, store)
    with pytest.raises(InvalidProof):
        verify_consistency(old, new, EMPTY_ROOT, EMPTY_ROOT, [])


def test_every_tree_is_consistent_with_the_empty_tree_by_an_empty_proof() -> None:
    leaves = make_leaves(9)
    verify_consistency(0, 9, EMPTY_ROOT, ref_mth(leaves), [])
    with pytest.raises(InvalidProof):
        verify_consistency(0, 9, EMPTY_ROOT, ref_mth(leaves), [ref_mth(leaves)])


def test_equal_sizes_are_consistent_only_with_equal_roots_and_an_empty_proof() -> None:
    leaves = make_leaves(6)
    root = ref_mth(leaves)
    verify_consistency(6, 6, root, root, [])
    with pytest.raises(InvalidProof):
        verify_consistency(6, 6, root, ref_mth(leaves[:5]), [])
    with pytest.raises(InvalidProof):
        verify_consistency(6, 6, root, root, [root])


@st.composite
def consistency_case(draw: st.DrawFn) -> tuple[int, int, list[bytes], list[bytes]]:
    old, new = draw(proper_old_and_new())
    leaves = make_leaves(new)
    return old, new, leaves, consistency_proof(old, new, build(leaves))


@FAST
@given(case=consistency_case(), data=st.data())
def test_tampered_consistency_proof_with_a_flipped_bit_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes]], data: st.DataObject
) -> None:
    old, new, leaves, proof = case
    at = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 8 * HASH_SIZE - 1))
    bad = [*proof]
    bad[at] = _flip(bad[at], bit)
    with pytest.raises(InvalidProof):
        verify_consistency(old, new, ref_mth(leaves[:old]), ref_mth(leaves), bad)


@FAST
@given(case=consistency_case(), data=st.data())
def test_consistency_proof_with_a_hash_dropped_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes]], data: st.DataObject
) -> None:
    old, new, leaves, proof = case
    at = data.draw(st.integers(0, len(proof) - 1))
    bad = proof[:at] + proof[at + 1 :]
    with pytest.raises(InvalidProof):
        verify_consistency(old, new, ref_mth(leaves[:old]), ref_mth(leaves), bad)


@FAST
@given(case=consistency_case(), data=st.data())
def test_consistency_proof_with_a_hash_added_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes]], data: st.DataObject
) -> None:
    old, new, leaves, proof = case
    old_root, new_root = ref_mth(leaves[:old]), ref_mth(leaves)
    at = data.draw(st.integers(0, len(proof)))
    extra = data.draw(st.sampled_from([old_root, new_root, EMPTY_ROOT, *proof]))
    bad = [*proof[:at], extra, *proof[at:]]
    with pytest.raises(InvalidProof):
        verify_consistency(old, new, old_root, new_root, bad)


@FAST
@given(case=consistency_case(), data=st.data())
def test_consistency_proof_presented_for_the_wrong_sizes_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes]], data: st.DataObject
) -> None:
    old, new, _, proof = case
    other_old, other_new = data.draw(
        st.one_of(
            st.sampled_from([(old - 1, new), (old + 1, new), (old, new + 1), (old, new - 1)]),
            proper_old_and_new(),
        ).filter(lambda c: 0 < c[0] < c[1] and c != (old, new))
    )
    other = make_leaves(other_new)
    # The proof is checked against the genuine roots of the claimed sizes.
    assume(ref_proof(other_old, other) != proof)
    with pytest.raises(InvalidProof):
        verify_consistency(other_old, other_new, ref_mth(other[:other_old]), ref_mth(other), proof)


@FAST
@given(case=consistency_case(), bit=st.integers(0, 8 * HASH_SIZE - 1))
def test_consistency_proof_against_the_wrong_new_root_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes]], bit: int
) -> None:
    old, new, leaves, proof = case
    old_root = ref_mth(leaves[:old])
    with pytest.raises(InvalidProof):
        verify_consistency(old, new, old_root, _flip(ref_mth(leaves), bit), proof)
    with pytest.raises(InvalidProof):
        verify_consistency(old, new, old_root, ref_mth([*leaves[:-1], b"forged"]), proof)


@FAST
@given(case=consistency_case(), bit=st.integers(0, 8 * HASH_SIZE - 1))
def test_consistency_proof_against_the_wrong_old_root_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes]], bit: int
) -> None:
    old, new, leaves, proof = case
    new_root = ref_mth(leaves)
    with pytest.raises(InvalidProof):
        verify_consistency(old, new, _flip(ref_mth(leaves[:old]), bit), new_root, proof)
    # A forked history of the same size is not an ancestor of this tree.
    forked = ref_mth([*leaves[: old - 1], b"forged"])
    with pytest.raises(InvalidProof):
        verify_consistency(old, new, forked, new_root, proof)


@FAST
@given(case=consistency_case(), data=st.data())
def test_consistency_proof_with_a_hash_of_the_wrong_length_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes]], data: st.DataObject
) -> None:
    old, new, leaves, proof = case
    at = data.draw(st.integers(0, len(proof) - 1))
    bad = [*proof]
    bad[at] = data.draw(st.sampled_from([bad[at][:-1], bad[at] + b"\x00", b"", bad[at] * 2]))
    with pytest.raises(InvalidProof):
        verify_consistency(old, new, ref_mth(leaves[:old]), ref_mth(leaves), bad)


@FAST
@given(case=consistency_case())
def test_empty_consistency_proof_between_different_sizes_is_rejected(
    case: tuple[int, int, list[bytes], list[bytes]],
) -> None:
    old, new, leaves, _ = case
    with pytest.raises(InvalidProof):
        verify_consistency(old, new, ref_mth(leaves[:old]), ref_mth(leaves), [])


def test_old_root_of_the_wrong_length_is_rejected_for_a_power_of_two_old_size() -> None:
    leaves = make_leaves(12)
    proof = consistency_proof(4, 12, build(leaves))
    with pytest.raises(InvalidProof):
        verify_consistency(4, 12, ref_mth(leaves[:4])[:-1], ref_mth(leaves), proof)
