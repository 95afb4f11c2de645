"""Tenure: license entitlements on a tamper-evident ledger."""

__version__ = "0.3.0.dev0"
