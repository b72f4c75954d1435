"""Temporal confirmation: a sliding-window vote, then an alert lifecycle (new / update / end)."""
