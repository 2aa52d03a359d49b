"""The XML namespaces of SOAP messages: one table for the SOAP kind, WS-Security, the stand-ins.

A namespace written out twice drifts (a typo in one copy makes a fault unreadable or a
header invisible); every module that builds or reads a SOAP envelope names them from here.
"""

from __future__ import annotations

__all__ = ["BUS_HEADERS", "ENVELOPES", "SOAP11", "SOAP12", "WSSE", "WSU"]

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"  # SOAP 1.1 Envelope
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"  # SOAP 1.2 Envelope
ENVELOPES = (SOAP11, SOAP12)
# The bus's own SOAP header elements: IdempotencyKey and traceparent.
BUS_HEADERS = "urn:dvcbus:soap:headers:1"
# OASIS Web Services Security 1.0: the Security header and its utility attributes.
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
