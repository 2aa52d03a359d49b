"""Adapter kinds: generic REST and SOAP, and the reference agency adapters."""
