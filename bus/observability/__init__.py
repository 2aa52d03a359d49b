"""Observers of the bus: logs, metrics and the audit trail, each a hop sink."""
