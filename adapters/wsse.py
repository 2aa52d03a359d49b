"""WS-Security headers for SOAP calls: UsernameToken (text or digest) and Timestamp.

OASIS Web Services Security, UsernameToken Profile 1.0 and SOAP Message Security 1.0:
the digest is Base64(SHA-1(nonce + created + password)), nonce and created fresh for every
message, so a captured request cannot be replayed once the agency's window has passed.
Built with lxml directly (rather than zeep's plug-in) so each message gets its own nonce,
created time and timestamp, and the password never passes through a log-friendly object.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import UTC, datetime, timedelta

from lxml import etree

from adapters.soapns import WSSE, WSU

_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = f"{_PROFILE}#PasswordText"
PASSWORD_DIGEST = f"{_PROFILE}#PasswordDigest"
BASE64 = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)


def _utc(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """Base64(SHA-1(nonce + created + password)), as the UsernameToken profile defines it."""
    digest = hashlib.sha1(nonce + created.encode("utf-8") + password.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def security_header(
    envelope_ns: str,
    *,
    username: str | None = None,
    password: str | None = None,
    digest: bool = True,
    timestamp: bool = True,
    ttl: float = 300.0,
    now: datetime | None = None,
    nonce: bytes | None = None,
) -> etree._Element:
    """A ``wsse:Security`` header element (mustUnderstand) for one message."""
    now = now or datetime.now(UTC)
    security = etree.Element(f"{{{WSSE}}}Security", nsmap={"wsse": WSSE, "wsu": WSU})
    security.set(f"{{{envelope_ns}}}mustUnderstand", "1")
    if timestamp:
        stamp = etree.SubElement(security, f"{{{WSU}}}Timestamp")
        stamp.set(f"{{{WSU}}}Id", f"TS-{os.urandom(8).hex()}")
        etree.SubElement(stamp, f"{{{WSU}}}Created").text = _utc(now)
        etree.SubElement(stamp, f"{{{WSU}}}Expires").text = _utc(now + timedelta(seconds=ttl))
    if username is not None:
        token = etree.SubElement(security, f"{{{WSSE}}}UsernameToken")
        token.set(f"{{{WSU}}}Id", f"UsernameToken-{os.urandom(8).hex()}")
        etree.SubElement(token, f"{{{WSSE}}}Username").text = username
        pw = etree.SubElement(token, f"{{{WSSE}}}Password")
        if digest:
            nonce = nonce if nonce is not None else os.urandom(16)
            created = _utc(now)
            pw.set("Type", PASSWORD_DIGEST)
            pw.text = password_digest(nonce, created, password or "")
            nonce_el = etree.SubElement(token, f"{{{WSSE}}}Nonce")
            nonce_el.set("EncodingType", BASE64)
            nonce_el.text = base64.b64encode(nonce).decode("ascii")
            etree.SubElement(token, f"{{{WSU}}}Created").text = created
        else:
            pw.set("Type", PASSWORD_TEXT)
            pw.text = password or ""
    return security


def check_username_token(security: etree._Element, username: str, password: str) -> bool:
    """Whether a received ``wsse:Security`` carries this user's valid password (any form).

    The agency side of the check, used by the stand-ins and tests; compared in constant time.
    """
    token = security.find(f"{{{WSSE}}}UsernameToken")
    if token is None:
        return False
    user = token.findtext(f"{{{WSSE}}}Username") or ""
    pw = token.find(f"{{{WSSE}}}Password")
    if pw is None or not hmac.compare_digest(user.encode(), username.encode()):
        return False
    if pw.get("Type") == PASSWORD_DIGEST:
        nonce = base64.b64decode(token.findtext(f"{{{WSSE}}}Nonce") or "")
        created = token.findtext(f"{{{WSU}}}Created") or ""
        expected = password_digest(nonce, created, password)
        return hmac.compare_digest((pw.text or "").encode(), expected.encode())
    return hmac.compare_digest((pw.text or "").encode(), password.encode())
