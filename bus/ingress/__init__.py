"""Ingress: the stage where messages enter the bus from authenticated senders.

``senders`` is the registry of who may send what (senders.yaml beside routes.yaml);
``gateway`` is the HTTP process (``dvcbus run gateway``) that authenticates a sender,
checks its claims and validates its message, and answers 202 only once the broker holds it.
Every way in takes the same steps, written once in ``admission`` (its public
``Admission`` and ``Post``): ``POST /v1/messages`` with the envelope as sent, and the ways in
that build it from a sender's own form, ``soap_endpoint`` (SOAP, with ``soap_status`` and
``soap_answers``) and ``payment_callback`` (the payment platform's native confirmation).
"""
