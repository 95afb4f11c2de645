"""Console sessions: the sealed cookie and its CSRF token (tenure.console.session)."""

from __future__ import annotations

from tenure.console.session import MAX_AGE_SECONDS, SessionSealer, new_signin_nonce

MASTER = bytes(range(32))
KEY = "tnr_example_api_key"


def _sealer(now: float = 1_000_000.0, master: bytes = MASTER) -> SessionSealer:
    plain = SessionSealer.from_master(master)
    return SessionSealer(plain.seal_key, plain.csrf_key, clock=lambda: now)


def test_a_sealed_key_opens_to_the_same_key() -> None:
    sealer = _sealer()
    assert sealer.open(sealer.seal(KEY)) == KEY


def test_the_cookie_does_not_show_the_key() -> None:
    assert KEY not in _sealer().seal(KEY)


def test_two_seals_of_one_key_differ() -> None:
    sealer = _sealer()
    assert sealer.seal(KEY) != sealer.seal(KEY)


def test_an_altered_cookie_does_not_open() -> None:
    sealer = _sealer()
    value = sealer.seal(KEY)
    flipped = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    assert sealer.open(flipped) is None
    assert sealer.open("not a cookie at all!") is None
    assert sealer.open("") is None


def test_a_cookie_sealed_under_another_master_key_does_not_open() -> None:
    value = _sealer(master=bytes(32)).seal(KEY)
    assert _sealer().open(value) is None


def test_a_session_older_than_its_max_age_does_not_open() -> None:
    value = _sealer(now=1_000_000.0).seal(KEY)
    assert _sealer(now=1_000_000.0 + MAX_AGE_SECONDS).open(value) == KEY
    assert _sealer(now=1_000_001.0 + MAX_AGE_SECONDS).open(value) is None


def test_the_csrf_token_is_bound_to_its_session() -> None:
    sealer = _sealer()
    one, two = sealer.seal(KEY), sealer.seal(KEY)
    assert sealer.csrf_valid(one, sealer.csrf_token(one))
    assert not sealer.csrf_valid(two, sealer.csrf_token(one))
    assert not sealer.csrf_valid(one, "")


def test_a_non_ascii_csrf_token_is_refused_not_an_error() -> None:
    sealer = _sealer()
    assert sealer.csrf_valid(sealer.seal(KEY), "é" * 64) is False


def test_a_signin_token_belongs_to_its_pre_session_nonce_only() -> None:
    sealer = _sealer()
    nonce, other = new_signin_nonce(), new_signin_nonce()
    token = sealer.signin_token(nonce)
    assert sealer.signin_valid(nonce, token)
    assert not sealer.signin_valid(other, token)
    assert not sealer.signin_valid(None, token)
    assert not sealer.signin_valid(nonce, "")
    assert not sealer.signin_valid(nonce, "é" * 64)


def test_a_malformed_nonce_never_validates() -> None:
    sealer = _sealer()
    for nonce in ("", "short", "x" * 44, "!" * 43):
        assert not sealer.signin_valid(nonce, sealer.signin_token(nonce))


def test_signin_and_session_tokens_are_not_interchangeable() -> None:
    sealer = _sealer()
    nonce = new_signin_nonce()
    assert not sealer.csrf_valid(nonce, sealer.signin_token(nonce))
    assert not sealer.signin_valid(nonce, sealer.csrf_token(nonce))
