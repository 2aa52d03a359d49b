"""Ingress: the stage where messages enter the bus from authenticated senders.

``senders`` is the registry of who may send what (senders.yaml beside routes.yaml);
``gateway`` is the HTTP process (``dvcbus run gateway``) that authenticates a sender,
checks its claims and validates its message, and answers 202 only once the broker holds it.
Its other ways in build the same envelope from a sender's own form and take the same steps
(``admission``): ``soap_endpoint`` (SOAP, with ``soap_status`` and ``soap_answers``) and
``payment_callback`` (the payment platform's native confirmation).
"""
