"""docs/vectors/ is exactly what tests/vectors/make_vectors.py makes, so the vectors
never drift from the code; the manifest is coherent and its README explains it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.vectors import VECTORS, manifest
from tenure.sdk import fingerprint_hash

from .make_vectors import FILE_INPUTS, KEPT, MANIFEST, write

REPOSITORY = VECTORS.parents[1]
README = VECTORS / "README.md"


def tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_regenerating_the_vectors_gives_the_committed_files_byte_for_byte(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.vectors.make_vectors", str(tmp_path)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    made = tree(tmp_path)
    committed = {path: raw for path, raw in tree(VECTORS).items() if path not in KEPT}
    assert sorted(made) == sorted(committed), "files added or removed: regenerate"
    changed = [path for path in made if made[path] != committed[path]]
    assert changed == [], f"regenerate with: python -m tests.vectors.make_vectors ({changed})"


def test_the_generator_removes_what_it_no_longer_makes_and_keeps_the_readme(
    tmp_path: Path,
) -> None:
    (tmp_path / "tokens" / "old").mkdir(parents=True)
    (tmp_path / "tokens" / "old" / "stale.jwt").write_text("x")
    (tmp_path / "README.md").write_text("kept")
    write(tmp_path)
    assert not (tmp_path / "tokens" / "old").exists()
    assert (tmp_path / "README.md").read_text() == "kept"
    assert (tmp_path / MANIFEST).is_file()


def test_every_file_is_used_by_a_vector_and_every_vector_names_files_that_exist() -> None:
    used = {MANIFEST}
    for vector in manifest()["vectors"]:
        named = [vector["file"]] + [
            value for name, value in vector["inputs"].items() if name in FILE_INPUTS
        ]
        assert all((VECTORS / path).is_file() for path in named), vector["id"]
        used.update(named)
    assert sorted(set(tree(VECTORS)) - KEPT) == sorted(used)


def test_fingerprint_hashes_in_the_inputs_are_the_documented_hash_of_the_fingerprint() -> None:
    checked = 0
    for vector in manifest()["vectors"]:
        inputs = vector["inputs"]
        if "fingerprint" in inputs:
            license_serial = inputs.get("serial", inputs.get("subject"))
            assert inputs["fingerprint_hash"] == fingerprint_hash(
                license_serial, inputs["fingerprint"]
            )
            checked += 1
    assert checked > 30


def test_each_kind_has_vectors_to_accept_and_to_refuse() -> None:
    verdicts: dict[str, set[str]] = {}
    for vector in manifest()["vectors"]:
        verdicts.setdefault(vector["kind"], set()).add(vector["expect"]["verdict"])
    assert len(verdicts) == 7
    assert all(found == {"accept", "reject"} for found in verdicts.values()), verdicts


def test_the_readme_explains_every_kind_and_reason_and_holds_the_proof_placeholder() -> None:
    text = README.read_text("utf-8")
    vectors: list[dict[str, Any]] = manifest()["vectors"]
    for kind in {vector["kind"] for vector in vectors}:
        assert f"### `{kind}`" in text, kind
    for reason in {vector["expect"].get("reason") for vector in vectors} - {None}:
        assert f"`{reason}`" in text, reason
    assert "## Proof-carrying check (comes with authenticated state)" in text


def test_the_readmes_relative_links_lead_to_files_that_exist() -> None:
    targets = re.findall(r"\]\((?!https?://)([^)#]+)\)", README.read_text("utf-8"))
    assert len(targets) > 10
    missing = [target for target in targets if not (VECTORS / target).exists()]
    assert missing == []
