"""Pure ledger mathematics: canonical encoding, RFC 6962 Merkle trees, signed notes,
checkpoints and the state digest. No clock, no I/O, no randomness."""
