"""Reading agency XML safely: no DTD, no entity expansion, no network, a size cap."""

import resource
import threading
import time

import pytest
from lxml import etree

from adapters import safexml
from adapters.safexml import UnsafeXml
from adapters.testing import BILLION_LAUGHS, EXTERNAL_ENTITY

QUADRATIC_BLOWUP = (
    b'<?xml version="1.0"?><!DOCTYPE k [<!ENTITY a "' + b"A" * 50_000 + b'">]><k>'
    + b"&a;" * 50_000 + b"</k>"
)  # fmt: skip


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize(
    "document",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        QUADRATIC_BLOWUP,
        b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://169.254.169.254/evil.dtd"><r/>',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><r/>',
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "quadratic-blowup",
        "external-dtd",
        "parameter-entity",
    ],
)
def test_hostile_documents_are_refused_quickly_without_expanding_anything(document: bytes) -> None:
    before = peak_rss_mb()
    started = time.perf_counter()
    with pytest.raises(UnsafeXml, match="DTD or entities") as caught:
        safexml.parse(document, max_bytes=len(document) + 1)
    assert caught.value.hostile
    assert time.perf_counter() - started < 0.5
    assert peak_rss_mb() - before < 20


def test_a_dtd_is_refused_even_where_a_byte_scan_cannot_see_it() -> None:
    utf16 = (
        EXTERNAL_ENTITY.decode()
        .replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
        .encode("utf-16")
    )
    assert b"<!DOCTYPE" not in utf16
    with pytest.raises(UnsafeXml, match="DTD or entities"):
        safexml.parse(utf16)


def test_the_parser_itself_never_expands_entities_or_loads_a_dtd() -> None:
    # Belt and braces under the DOCTYPE refusal: the parser alone keeps entities unexpanded.
    root = etree.fromstring(EXTERNAL_ENTITY, parser=safexml._parser())
    text = etree.tostring(root)
    assert b"root:" not in text


def test_an_answer_over_the_cap_is_refused_before_parsing() -> None:
    with pytest.raises(UnsafeXml, match="over the cap of 1024 bytes") as caught:
        safexml.parse(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1024)
    assert caught.value.hostile


def test_deeply_nested_documents_are_refused() -> None:
    with pytest.raises(UnsafeXml, match="not well-formed"):
        safexml.parse(b"<a>" * 100_000)


@pytest.mark.parametrize("document", [b"", b"   ", b"garbage", b"<a><b></a>", b"\xff\xfe\x00<"])
def test_broken_documents_are_refused_as_broken_not_hostile(document: bytes) -> None:
    with pytest.raises(UnsafeXml) as caught:
        safexml.parse(document)
    assert not caught.value.hostile


def test_a_plain_soap_answer_is_read_and_found_by_local_name() -> None:
    root = safexml.parse(
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<r:KetQua xmlns:r="urn:x"><r:MaLoi> 0 </r:MaLoi></r:KetQua></s:Body></s:Envelope>'
    )
    assert safexml.text_of(root, "MaLoi") == "0"
    assert safexml.text_of(root, "Missing") is None


def test_parsing_is_safe_from_several_threads() -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                assert safexml.local_name(safexml.parse(b"<a><b>1</b></a>")) == "a"
                with pytest.raises(UnsafeXml):
                    safexml.parse(BILLION_LAUGHS)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
