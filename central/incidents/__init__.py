"""Incident logic without I/O: geometry, correlation of alerts into incidents, severity."""
