"""Untrusted XML, read safely: documents are size-limited before parsing, parsed by defusedxml with
DTDs forbidden (so no entity expansion, no external entities, no billion laughs), and bounded in
element count and depth after parsing. CAP documents and ATOM/RSS feed indexes both come through here.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from hazardwatch.central.warnings.cap_model import CAP11, CAP12, CapError

ATOM = "http://www.w3.org/2005/Atom"
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_ELEMENTS = 20_000
MAX_DEPTH = 32


def parse_xml(data: bytes, max_bytes: int = MAX_DOCUMENT_BYTES) -> Element:
    """Parse untrusted XML: bounded size, no DTD at all, bounded element count and depth."""
    if len(data) > max_bytes:
        raise CapError("oversized", f"document of {len(data)} bytes exceeds the limit of {max_bytes}")
    if not data.strip():
        raise CapError("malformed", "empty document")
    try:
        root = safe_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        reason = f"forbidden XML construct ({type(exc).__name__}): DTDs and entities are refused"
        raise CapError("forbidden", reason) from None
    except ParseError as exc:
        raise CapError("malformed", f"not well-formed XML: {exc}") from None
    except (ValueError, UnicodeError, LookupError) as exc:
        raise CapError("malformed", f"unreadable XML: {exc}") from None
    count = 0
    stack: list[tuple[Element, int]] = [(root, 1)]
    while stack:
        el, depth = stack.pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise CapError("oversized", f"more than {MAX_ELEMENTS} elements")
        if depth > MAX_DEPTH:
            raise CapError("oversized", f"elements nested deeper than {MAX_DEPTH}")
        stack.extend((child, depth + 1) for child in el)
    return root


def namespace(el: Element) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def local_name(el: Element) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag.rsplit("}", 1)[-1]


def is_cap_alert(el: Element) -> bool:
    return local_name(el) == "alert" and namespace(el) in (CAP12, CAP11)
