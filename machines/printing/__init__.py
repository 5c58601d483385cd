"""The print queue of the labs: parts sent to a lab, sliced, given to idle printers,
tracked until they are collected, and remembered as provenance records.

A package of `machines`, not an app of its own: its models and migrations live in
`machines/`. docs/print-queue.md walks through it; pyproject.toml states its layers.
"""
