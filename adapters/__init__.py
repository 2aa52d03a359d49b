"""Adapters: the base contract and the built-in kinds that call agency systems."""
