"""Key material: the master key, encrypted signing keys, license key derivation."""
