"""Hostile input and faults (issue 12): bad files, folders, manifests and configs built from code,
and kills at deterministic points; each test asserts the exact outcome."""
