"""The JWKS and the key set note signed by the ledger key (docs/offline.md, "The
signed key set"), and the notes a verifier must refuse."""

from __future__ import annotations

from dataclasses import replace

from tenure.crypto import jws
from tenure.crypto.keyset import HEADER, KeySet, VouchedKey, keyset_text, sign_keyset
from tenure.ledger.note import sign_note

from .collection import JWKS, KEYSET, LEDGER_KEY, OLD_KEYSET, Collection, accept, reject
from .world import (
    ACCOUNT,
    ATTACKER_KEY,
    CURRENT_KEY,
    IMPOSTOR_SIGNER,
    LEDGER_SIGNER,
    NOW,
    OLD_NOTE_TIME,
    ORIGIN,
    OTHER_ACCOUNT,
    ROTATED_KEY,
    TOKEN_LIFETIME,
)

PUBLISHED = (ROTATED_KEY, CURRENT_KEY)


def note_facts(keyset: KeySet) -> dict[str, object]:
    """What an accepted note yields."""
    return {
        "account": keyset.account,
        "time": keyset.time,
        "token_lifetime": keyset.token_lifetime,
        "keys": [key_facts_of(key) for key in keyset.keys],
    }


def key_facts_of(key: VouchedKey) -> dict[str, object]:
    return {
        "kid": key.kid,
        "x": key.x,
        "valid_from": key.valid_from,
        "valid_until": key.valid_until,
    }


def build_keys(out: Collection, checkpoint_note: str) -> None:
    """The JWKS, the key set notes, and the note vectors (one reuses a checkpoint)."""
    out.json_file(JWKS, jws.jwks({key.kid: key.private.public_key() for key in PUBLISHED}))
    keys = tuple(key.vouched() for key in PUBLISHED)
    keyset = KeySet(ORIGIN, ACCOUNT, NOW, TOKEN_LIFETIME, keys)
    note = sign_keyset(keyset, [LEDGER_SIGNER])
    note_vector(
        out,
        "valid",
        out.file(KEYSET, note),
        "The account's token keys, signed by its ledger key.",
        accept(**note_facts(keyset)),
    )
    # Signed sixty days ago, when the rotated key still signed and the current one
    # did not exist yet: a note a cache may still hold.
    old = KeySet(
        ORIGIN,
        ACCOUNT,
        OLD_NOTE_TIME,
        TOKEN_LIFETIME,
        (replace(ROTATED_KEY.vouched(), valid_until=None),),
    )
    note_vector(
        out,
        "old",
        out.file(OLD_KEYSET, sign_keyset(old, [LEDGER_SIGNER])),
        "The key set note of sixty days ago, when the rotated key still signed: it "
        "verifies, and vouches for that key until its time plus its token lifetime.",
        accept(**note_facts(old)),
    )
    text = keyset_text(keyset)
    attacker = ATTACKER_KEY
    widened = note.replace(text, text + f"key {attacker.kid} {attacker.x} 0 -\n")
    mismatched = text.replace(
        f"key {CURRENT_KEY.kid} {CURRENT_KEY.x}", f"key {attacker.kid} {CURRENT_KEY.x}"
    )
    version_1 = text.replace(HEADER, "tenure-keyset v1").replace(
        f"time {NOW}\ntoken-lifetime {TOKEN_LIFETIME}\n", ""
    )
    cases = [
        (
            "v1",
            sign_note(version_1, [LEDGER_SIGNER]),
            "Signed by the ledger key, in the format before the note stated its time "
            "(tenure-keyset v1): it would vouch for a signing key with no end.",
        ),
        (
            "impostor-key",
            sign_keyset(keyset, [IMPOSTOR_SIGNER]),
            "Signed by another key that has the ledger key's name.",
        ),
        ("widened", widened, "An attacker's key line added after signing."),
        (
            "other-account",
            sign_keyset(replace(keyset, account=OTHER_ACCOUNT), [LEDGER_SIGNER]),
            "Signed by the ledger key, but the key set of another account.",
        ),
        (
            "kid-not-thumbprint",
            sign_note(mismatched, [LEDGER_SIGNER]),
            "Signed by the ledger key, but a key line's kid is not the thumbprint of its x.",
        ),
    ]
    for name, text_of_note, description in cases:
        path = out.file(f"keys/tampered/keyset-{name}.note", text_of_note)
        note_vector(out, name, path, description, reject("untrusted_keyset"))
    note_vector(
        out,
        "checkpoint-as-keyset",
        checkpoint_note,
        "A checkpoint, signed by the same ledger key, presented as a key set.",
        reject("untrusted_keyset"),
    )
    out.vector(
        "checkpoint",
        "keyset-as-checkpoint",
        KEYSET,
        "The key set note, signed by the same ledger key, presented as a checkpoint.",
        {"ledger_key": LEDGER_KEY},
        reject("malformed_note"),
    )


def note_vector(
    out: Collection, name: str, path: str, description: str, expect: dict[str, object]
) -> None:
    out.vector(
        "keyset-note",
        name,
        path,
        description,
        {"ledger_key": LEDGER_KEY, "account": ACCOUNT},
        expect,
    )
