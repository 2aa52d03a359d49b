"""Client-certificate rules that need no gateway: settings that go together, senders.yaml's
auth.certificate, a proxy header's forms, and what a registration matches."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from bus.ingress.client_certs import Presented, _certificate_in, fingerprint_bytes, registered_of
from bus.ingress.senders import check_senders, load_senders
from bus.settings import Settings, SettingsError
from tests.integration.certificates import issue, make_ca

SENDER = """\
version: 1
senders:
  {sid}:
    agencies: [000.00.00.H26]
    sources: [000.00.00.H26]
    types: [dossier.status_changed]
    auth:
      certificate: {cert}
"""


def _registry(tmp_path: Path, *entries: tuple[str, str]) -> Path:
    text = SENDER.format(sid=entries[0][0], cert=entries[0][1])
    for sid, cert in entries[1:]:
        text += SENDER.format(sid=sid, cert=cert).split("senders:\n", 1)[1]
    path = tmp_path / "senders.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"gateway_tls_cert": "/etc/gw.pem"}, "go together"),
        ({"gateway_trusted_proxies": "10.0.0.1"}, "needs gateway_tls_client_ca"),
        (
            {"gateway_trusted_proxies": "10.0.0.0/8, proxy.local", "gateway_tls_client_ca": "/ca"},
            "'proxy.local' is not an address",
        ),
    ],
)
def test_gateway_tls_settings_that_cannot_work_are_refused(
    values: dict[str, str], words: str
) -> None:
    with pytest.raises(SettingsError, match=words):
        Settings.load(**values)


def test_a_subject_must_be_a_distinguished_name(tmp_path: Path) -> None:
    path = _registry(tmp_path, ("hanoi", '{ subject: "just some words" }'))
    problems = check_senders(path)
    assert any("is not a distinguished name as RFC 4514 writes it" in p.message for p in problems)


def test_two_senders_cannot_share_a_certificate(tmp_path: Path) -> None:
    fp = "sha256:" + "AB" * 32
    path = _registry(
        tmp_path,
        ("hanoi", f'{{ fingerprint: ["{fp}"] }}'),
        ("hanoi-too", f'{{ fingerprint: "sha256:{"ab" * 32}" }}'),  # the same, written apart
    )
    problems = check_senders(path)
    assert any("shares its client certificate with 'hanoi'" in p.message for p in problems)


def test_a_registration_with_both_needs_both(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "Unit CA")
    leaf = issue(ca, tmp_path, "hanoi.test")
    der = leaf.cert.public_bytes(Encoding.DER)
    both = (
        f'{{ fingerprint: ["{leaf.fingerprint}"], subject: "CN=hanoi.test,O=dvc-bus tests,C=VN" }}'
    )
    path = _registry(
        tmp_path, ("hanoi", both), ("other", '{ subject: "CN=other.test,O=dvc-bus tests,C=VN" }')
    )
    registered = registered_of(load_senders(path))
    presented = Presented(hashlib.sha256(der).digest(), leaf.cert.subject, "TLS")
    assert fingerprint_bytes(leaf.fingerprint) == presented.fingerprint
    assert presented.fingerprint_text == leaf.fingerprint
    assert registered["hanoi"].matches(presented)
    assert not registered["other"].matches(presented)
    renamed = Presented(presented.fingerprint, registered["other"].subject, "TLS")
    assert not registered["hanoi"].matches(renamed)  # right fingerprint, wrong subject


def test_a_proxy_header_is_url_encoded_pem_or_base64_der(tmp_path: Path) -> None:
    import base64

    leaf = issue(make_ca(tmp_path, "Unit CA"), tmp_path, "portal.test")
    der = leaf.cert.public_bytes(Encoding.DER)
    assert _certificate_in(quote(leaf.pem.decode(), safe="")) == leaf.cert
    assert _certificate_in(base64.b64encode(der).decode()) == leaf.cert
    assert _certificate_in("not a certificate") is None
    assert _certificate_in("-----BEGIN CERTIFICATE-----garbage") is None
