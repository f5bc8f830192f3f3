"""Form bodies (``application/x-www-form-urlencoded``) and request headers.

Twilio posts every webhook as a URL-encoded form (PROTOCOLS.md §2.1). A form
may repeat a name, and Twilio signs *every* distinct value of a repeated name
(PROTOCOLS.md §1.2 step 2), so a form is kept as the ordered list of its
pairs, never squashed into a ``dict``. Empty values are kept too: Twilio signs
``FromCity=`` as ``FromCity``.

Decoding rules (WHATWG URL standard, "application/x-www-form-urlencoded
parsing", which is what Twilio's and every browser's encoder target):
split on ``&``, split each piece at its first ``=``, turn ``+`` into a
space, percent-decode, then decode the bytes as UTF-8. A body that is not
UTF-8 is refused (400) rather than guessed at, since a guess would change
the string Twilio signed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from .._errors import RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_FORM_BYTES",
    "DEFAULT_MAX_FORM_FIELDS",
    "FormData",
    "Headers",
    "header_value",
    "parse_form",
]

# Twilio's largest voice callbacks (incoming call with every geo field, STIR
# data and a forwarded-from) are about 2 KB; 64 KiB is thirty times that and
# still small enough that a hostile client cannot make us buffer much.
DEFAULT_MAX_FORM_BYTES = 64 * 1024
# Twilio sends about 40 fields; 256 leaves room for custom parameters while
# bounding the work of sorting names for the signature.
DEFAULT_MAX_FORM_FIELDS = 256

#: Request headers as the runtime has them: h11's ``(bytes, bytes)`` pairs,
#: ``(str, str)`` pairs, or a mapping. Names are matched case-insensitively
#: (RFC 9110 §5.1).
Headers = Iterable[tuple[str | bytes, str | bytes]] | Mapping[str, str]


def _text(value: str | bytes) -> str:
    # RFC 9110 §5.5: field values are octets; latin-1 maps each octet to one
    # code point, so nothing is lost and nothing can fail to decode.
    return value.decode("latin-1") if isinstance(value, bytes) else value


def header_value(headers: Headers, name: str) -> str | None:
    """The value of header ``name`` (any case), or ``None`` if absent.

    A header that appears more than once is ambiguous for a security check
    (which copy did the carrier sign?), so it raises RemoteProtocolError(400).
    """
    wanted = name.lower()
    pairs: Iterable[tuple[str | bytes, str | bytes]]
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: str | None = None
    for key, value in pairs:
        if _text(key).lower() == wanted:
            if found is not None:
                raise RemoteProtocolError(f"header {name} repeated", http_status=400)
            found = _text(value).strip()
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class FormData:
    """A decoded form: its ``(name, value)`` pairs in the order they came.

    Read it with :meth:`get` (first value), :meth:`getall` (every value) or
    :meth:`to_dict` (first value of each name). Unknown names are never
    dropped, so a new carrier field is always reachable.
    """

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_items(
        cls, items: Mapping[str, str | Iterable[str]] | Iterable[tuple[str, str]]
    ) -> FormData:
        """Build from a mapping (a value may be a list of values) or from pairs."""
        pairs: list[tuple[str, str]] = []
        if isinstance(items, Mapping):
            for key, value in items.items():
                if isinstance(value, str):
                    pairs.append((key, value))
                else:
                    pairs.extend((key, v) for v in value)
        else:
            pairs.extend(items)
        return cls(pairs=tuple(pairs))

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.pairs:
            if key == name:
                return value
        return default

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def names(self) -> list[str]:
        """Distinct names, in first-seen order."""
        return list(dict.fromkeys(key for key, _ in self.pairs))

    def to_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self.pairs:
            out.setdefault(key, value)
        return out

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)


def _decode_component(raw: bytes) -> str:
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("form field is not UTF-8", http_status=400) from None


def parse_form(
    body: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_FORM_BYTES,
    max_fields: int = DEFAULT_MAX_FORM_FIELDS,
) -> FormData:
    """Decode an ``application/x-www-form-urlencoded`` body.

    Raises RemoteProtocolError with ``http_status`` 413 when the body or the
    number of fields exceeds the limits, 400 when it is not valid UTF-8.
    Empty pieces (``a=1&&b=2``) are skipped as the WHATWG parser does; a piece
    without ``=`` is a name with an empty value.
    """
    if len(body) > max_bytes:
        raise RemoteProtocolError(
            f"form body of {len(body)} bytes exceeds {max_bytes}", http_status=413
        )
    if not body:
        return FormData()
    # Count before splitting so a body of 60k ampersands costs nothing.
    if body.count(b"&") + 1 > max_fields and len([p for p in body.split(b"&") if p]) > max_fields:
        raise RemoteProtocolError(f"form has more than {max_fields} fields", http_status=413)
    pairs: list[tuple[str, str]] = []
    for piece in body.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        pairs.append((_decode_component(name), _decode_component(value)))
    return FormData(pairs=tuple(pairs))
