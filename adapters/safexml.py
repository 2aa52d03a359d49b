"""Reading XML from agencies without trusting it: no DTD, no entities, no network, a size cap.

An agency's answer is untrusted input. A "billion laughs" entity bomb, an external entity
pointing at ``/etc/passwd`` or an internal URL, or a 100 MB body must cost the bus nothing
but a dead letter with a clear reason. The parser never loads or applies a DTD, never
expands an entity, never opens a network connection, and refuses a document that declares
a DOCTYPE at all (a SOAP message may not carry one, per SOAP 1.1 §3 and 1.2 part 1 §5).
Bodies over the cap are refused before parsing.
"""

from __future__ import annotations

import threading

from lxml import etree

from adapters.masking import mask_text

DEFAULT_MAX_BYTES = 1024 * 1024
_DTD = "XML answer declares a DTD or entities (refused: never expanded)"

_local = threading.local()


class UnsafeXml(Exception):
    """The document was refused; the message says why in an operator's words.

    ``hostile``: refused for what it tries to do (DTD, entities, size), not merely broken.
    """

    def __init__(self, message: str, *, hostile: bool = False) -> None:
        super().__init__(message)
        self.hostile = hostile


def _parser() -> etree.XMLParser:
    # lxml parsers are not thread-safe: one per thread.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def parse(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """The root element of ``body``, or :class:`UnsafeXml` saying why it was refused."""
    if len(body) > max_bytes:
        raise UnsafeXml(
            f"XML answer of {len(body)} bytes is over the cap of {max_bytes} bytes", hostile=True
        )
    if not body.strip():
        raise UnsafeXml("empty answer where XML was expected")
    # Cheap early refusal (markup is case-sensitive); the check on the parsed document
    # below also covers encodings where these bytes do not appear as such (UTF-16).
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise UnsafeXml(_DTD, hostile=True)
    try:
        root = etree.fromstring(body, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"not well-formed XML: {_syntax_message(exc)}") from None
    if root is None:
        raise UnsafeXml("XML answer has no root element")
    tree = root.getroottree()
    docinfo = tree.docinfo
    # lxml-stubs 0.5 lacks DocInfo.doctype (lxml has it)
    if docinfo.doctype or docinfo.internalDTD is not None:  # type: ignore[union-attr]
        raise UnsafeXml(_DTD, hostile=True)
    return root


def _syntax_message(exc: etree.XMLSyntaxError) -> str:
    msg = str(exc.msg or exc).strip().split(", line ", 1)[0]
    line, col = (exc.position or (0, 0))[:2]
    return f"{mask_text(msg)[:100]} (line {line}, column {col})"


def local_name(element: etree._Element) -> str:
    """An element's name without its namespace."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def find_local(root: etree._Element, name: str) -> etree._Element | None:
    """The first descendant (or ``root`` itself) whose local name is ``name``."""
    if local_name(root) == name:
        return root
    for element in root.iter():
        if local_name(element) == name:
            return element
    return None


def text_of(root: etree._Element, name: str) -> str | None:
    """Text of the first element named ``name`` (local name), stripped, or None."""
    element = find_local(root, name)
    if element is None:
        return None
    return (element.text or "").strip()
