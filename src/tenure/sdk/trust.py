"""What the SDK trusts to verify tokens and revocation lists (docs/offline.md, "The
SDK's trust anchor"): ``TrustAnchor`` (the pinned ledger key, or trust on first use)
and ``TrustedKeys``. They live in ``tenure.crypto.trust``, which ``tenure token
verify`` shares; this is their place in the SDK's public interface."""

from tenure.crypto.trust import CLOCK_SKEW, JWKS_FILE, KEYSET_FILE, TrustAnchor, TrustedKeys

__all__ = ["CLOCK_SKEW", "JWKS_FILE", "KEYSET_FILE", "TrustAnchor", "TrustedKeys"]
