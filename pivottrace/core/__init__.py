"""Plumbing shared by every part: config and its schema, atomic I/O, runtime device, run manifest."""
