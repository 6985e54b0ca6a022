"""The memory tiers: core memory (in the prompt), recall storage and archival storage."""
