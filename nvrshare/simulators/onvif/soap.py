"""SOAP envelopes for the ONVIF camera simulator: parse requests, render replies and faults.

Requests come from the network and are treated as hostile even though the
simulator is test infrastructure: the body is size-limited before parsing, the
parser never loads a DTD, resolves an entity or touches the network, and any
document carrying a DOCTYPE is refused. Every problem surfaces as `SoapFault`,
which the HTTP adapter renders as a SOAP fault instead of crashing.

Replies are built from string templates; every value that comes from state or
from a request goes through `text()` / `attr()` so it is escaped exactly once.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"

# Every prefix the reply templates use, declared once on the envelope so the
# topic expression `tns1:VideoSource/MotionAlarm` resolves on the client side.
NAMESPACES = {
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "tse": "http://www.onvif.org/ver10/search/wsdl",
    "trp": "http://www.onvif.org/ver10/replay/wsdl",
    "trc": "http://www.onvif.org/ver10/recording/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "tns1": "http://www.onvif.org/ver10/topics",
    "wsntw": "http://docs.oasis-open.org/wsn/bw-2",
    "wsrf-rw": "http://docs.oasis-open.org/wsrf/rw-2",
}
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"

_XMLNS = " ".join(f"xmlns:{prefix}={quoteattr(uri)}" for prefix, uri in NAMESPACES.items())


class SoapFault(Exception):
    """A request the simulator refuses; rendered as a SOAP fault.

    `sender` faults (the client's mistake) go out with HTTP 400, receiver faults
    with HTTP 500, as SOAP 1.2 over HTTP prescribes. `subcode` is an ONVIF error
    QName such as ``ter:NotAuthorized``; `detail_subcode` an optional second level.
    """

    def __init__(
        self,
        reason: str,
        *,
        subcode: str = "ter:InvalidArgVal",
        detail_subcode: str | None = None,
        sender: bool = True,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.subcode = subcode
        self.detail_subcode = detail_subcode
        self.sender = sender

    @property
    def http_status(self) -> int:
        return 400 if self.sender else 500


@dataclass(frozen=True, kw_only=True, slots=True)
class SoapRequest:
    """One parsed SOAP request: which operation, its body element and the Security header."""

    soap_ns: str
    operation: etree.QName
    body: etree._Element
    security: etree._Element | None


def _parser() -> etree.XMLParser:
    # A fresh parser per request: lxml parsers are not safe to share across threads,
    # and this keeps the hardening flags in one visible place.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_request(data: bytes, *, max_bytes: int) -> SoapRequest:
    """Parse a SOAP 1.1 or 1.2 request envelope.

    Raises `SoapFault` (sender) for an oversized body, malformed XML, a DOCTYPE,
    a foreign root element, or a Body without exactly one operation element.
    """
    if len(data) > max_bytes:
        raise SoapFault(f"request body exceeds {max_bytes} bytes")
    if not data.strip():
        raise SoapFault("empty request body")
    try:
        root = etree.fromstring(data, parser=_parser())
        doctype = root.getroottree().docinfo.doctype
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise SoapFault(f"malformed XML: {exc}") from None
    if doctype:
        raise SoapFault("DOCTYPE is not allowed")
    if not isinstance(root.tag, str):
        raise SoapFault("not a SOAP envelope")
    root_name = etree.QName(root)
    if root_name.localname != "Envelope" or root_name.namespace not in (SOAP12_ENV, SOAP11_ENV):
        raise SoapFault("not a SOAP envelope")
    soap_ns = root_name.namespace
    header = root.find(f"{{{soap_ns}}}Header")
    body = root.find(f"{{{soap_ns}}}Body")
    if body is None:
        raise SoapFault("SOAP envelope without a Body")
    operations = [child for child in body if isinstance(child.tag, str)]
    if len(operations) != 1:
        raise SoapFault("SOAP Body must hold exactly one operation")
    security = header.find(f"{{{WSSE}}}Security") if header is not None else None
    return SoapRequest(
        soap_ns=soap_ns,
        operation=etree.QName(operations[0]),
        body=operations[0],
        security=security,
    )


# --- reading request values -------------------------------------------------------

_MAX_TEXT = 1024


def child(element: etree._Element, namespace: str, name: str) -> etree._Element | None:
    """The first child element `{namespace}name`, or None."""
    return element.find(f"{{{namespace}}}{name}")


def child_text(element: etree._Element, namespace: str, name: str) -> str | None:
    """Stripped text of a child element; None when absent. Over-long text is a fault."""
    found = child(element, namespace, name)
    if found is None:
        return None
    value = (found.text or "").strip()
    if len(value) > _MAX_TEXT:
        raise SoapFault(f"{name} is too long")
    return value


def float_attr(element: etree._Element | None, name: str) -> float | None:
    """A finite float attribute, or None when the element or attribute is absent."""
    if element is None:
        return None
    raw = element.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SoapFault(f"attribute {name} is not a number") from None
    if not math.isfinite(value):
        raise SoapFault(f"attribute {name} is not finite")
    return value


_DURATION = re.compile(
    r"^P(?:(?P<d>\d{1,6})D)?(?:T(?:(?P<h>\d{1,6})H)?(?:(?P<m>\d{1,6})M)?"
    r"(?:(?P<s>\d{1,6}(?:\.\d{1,6})?)S)?)?$"
)


def parse_duration(value: str) -> float:
    """Seconds in an xs:duration limited to days/hours/minutes/seconds (``PT1M``, ``PT0.5S``)."""
    match = _DURATION.match(value.strip())
    if match is None or value.strip() in ("P", "PT") or value.strip().endswith("T"):
        raise SoapFault(f"not a supported xs:duration: {value[:40]!r}")
    parts = {key: float(raw) if raw else 0.0 for key, raw in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def parse_termination(value: str, *, now: dt.datetime) -> float:
    """Seconds from `now` requested by a termination time: a duration or an absolute time."""
    value = value.strip()
    if value.startswith("P"):
        return parse_duration(value)
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SoapFault(f"not a duration or dateTime: {value[:40]!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - now).total_seconds()


# --- rendering replies ----------------------------------------------------------


def text(value: object) -> str:
    """Escape a value for element content."""
    return escape(str(value))


def attr(value: object) -> str:
    """Escape and quote a value for an attribute."""
    return quoteattr(str(value))


def xs_bool(value: bool) -> str:
    return "true" if value else "false"


def xs_datetime(value: dt.datetime) -> str:
    """UTC `xs:dateTime` with a Z suffix, to the second (what cameras send)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_type(soap_ns: str) -> str:
    if soap_ns == SOAP11_ENV:
        return "text/xml; charset=utf-8"
    return "application/soap+xml; charset=utf-8"


def envelope(body: str, *, soap_ns: str = SOAP12_ENV) -> bytes:
    """Wrap rendered body content in an envelope declaring every namespace we use."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope xmlns:env="{soap_ns}" {_XMLNS}>'
        f"<env:Body>{body}</env:Body></env:Envelope>"
    ).encode()


def render_fault(fault: SoapFault, *, soap_ns: str = SOAP12_ENV) -> bytes:
    """A SOAP fault in the envelope version the client spoke."""
    reason = text(fault.reason[:300])
    if soap_ns == SOAP11_ENV:
        code = "env:Client" if fault.sender else "env:Server"
        body = (
            f"<env:Fault><faultcode>{code}</faultcode>"
            f"<faultstring>{text(fault.subcode)}: {reason}</faultstring></env:Fault>"
        )
        return envelope(body, soap_ns=soap_ns)
    inner = ""
    if fault.detail_subcode:
        inner = f"<env:Subcode><env:Value>{text(fault.detail_subcode)}</env:Value></env:Subcode>"
    body = (
        "<env:Fault><env:Code>"
        f"<env:Value>{'env:Sender' if fault.sender else 'env:Receiver'}</env:Value>"
        f"<env:Subcode><env:Value>{text(fault.subcode)}</env:Value>{inner}</env:Subcode>"
        "</env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{reason}</env:Text></env:Reason>'
        "</env:Fault>"
    )
    return envelope(body, soap_ns=soap_ns)
