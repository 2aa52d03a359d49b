"""Adapters: the contract (base), the built-in kinds, and the tools every kind shares.

- ``base``: Adapter, TargetSpec and the three outcomes
- ``classify``: the outcome rules; ``masking``: personal data out of reasons
- ``http``, ``auth``, ``options``, ``mapping``: HTTP with TLS and caps, auth flows, typed
  options, declared field mappings
- ``safexml``, ``wsse``: hardened XML reading, WS-Security headers
- kinds: ``rest``, ``soap`` (generic); ``portal_sync``, ``onestop``, ``payment`` (reference)
- ``skeleton``: what ``dvcbus adapters new`` writes
"""
