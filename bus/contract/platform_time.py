"""The payment platform's (and the SOAP senders') times: ``yyyyMMddHHmmss`` in Vietnam time.

They carry no offset: the gateway turns them into RFC 3339 ``+07:00`` times, the router
compares them with a payment's ``paid_at``. Both read them here, the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

VIETNAM = timezone(timedelta(hours=7))  # UTC+7 all year (no daylight saving)


def platform_moment(text: str) -> datetime | None:
    """The moment ``yyyyMMddHHmmss`` (Vietnam time) names; None if it names none."""
    if len(text) != 14 or not text.isdigit():
        return None
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
            tzinfo=VIETNAM,
        )
    except ValueError:
        return None
