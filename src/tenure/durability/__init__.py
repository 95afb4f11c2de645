"""Durability (SPEC "Durability: snapshots, shipping, restore"): sites, ledger
segments shipped to them, snapshots of the projection, and proven restores."""
