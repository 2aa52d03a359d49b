"""A plug-in adapter kind for chaos tests: the REST kind, except on messages asking it to fail.

A dossier whose summary contains ``chaos: raise`` makes ``deliver`` raise (an adapter bug);
``chaos: exit`` kills the whole process (a crash). It is installed only for tests, by putting
this folder on PYTHONPATH: its ``*.dist-info`` registers it under ``dvcbus.adapters``.
"""

from __future__ import annotations

import os

from adapters.base import Outcome
from adapters.kinds.rest import RestAdapter
from bus.contract.envelope import Message


class CrashyAdapter(RestAdapter):
    kind = "crashy"

    async def deliver(self, message: Message) -> Outcome:
        summary = str(message.payload.get("summary", ""))
        if "chaos: exit" in summary:
            os._exit(3)
        if "chaos: raise" in summary:
            raise RuntimeError("adapter bug triggered by the message")
        return await super().deliver(message)
