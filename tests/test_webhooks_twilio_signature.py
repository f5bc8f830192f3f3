"""Twilio X-Twilio-Signature: worked examples and the official validator as oracle."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from patter_core import LocalProtocolError, RemoteProtocolError, SignatureError
from patter_core.webhooks import FormData, TwilioSignatureValidator
from patter_core.webhooks._twilio_signature import media_stream_url, public_url, signature_algorithm

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
JSON_BODY = b'{"property": "value", "boolean": true}'
JSON_URL = URL + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"


# --- PROTOCOLS.md §1.3 worked examples ---------------------------------------


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        (URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),  # basic
        (URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # https_port_443_added
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ],
)
def test_worked_examples(url: str, signature: str) -> None:
    TwilioSignatureValidator(TOKEN).validate(url, PARAMS, signature)


def test_worked_example_string_to_sign() -> None:
    v = TwilioSignatureValidator(TOKEN)
    assert v.compute_signature(URL, PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_duplicate_params_example() -> None:
    form = FormData.from_items(
        [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    )
    TwilioSignatureValidator(TOKEN).validate(URL, form, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")
    # the same pairs given as a mapping of lists sign the same
    TwilioSignatureValidator(TOKEN).validate(
        URL,
        {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234"]},
        "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
    )


def test_json_body_example() -> None:
    v = TwilioSignatureValidator(TOKEN)
    v.validate(JSON_URL, None, "a9nBmqA0ju/hNViExpshrM61xv4=", body=JSON_BODY)
    with pytest.raises(SignatureError, match="bodySHA256"):
        v.validate(JSON_URL, None, "a9nBmqA0ju/hNViExpshrM61xv4=", body=JSON_BODY + b" ")
    with pytest.raises(SignatureError, match="bodySHA256"):
        v.validate(URL, None, "a9nBmqA0ju/hNViExpshrM61xv4=", body=JSON_BODY)


def test_tampered_params_and_wrong_token_rejected() -> None:
    sig = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    with pytest.raises(SignatureError):
        TwilioSignatureValidator(TOKEN).validate(URL, {**PARAMS, "Digits": "1235"}, sig)
    with pytest.raises(SignatureError):
        TwilioSignatureValidator("12346").validate(URL, PARAMS, sig)
    with pytest.raises(SignatureError, match="missing"):
        TwilioSignatureValidator(TOKEN).validate(URL, PARAMS, None)
    with pytest.raises(SignatureError):
        TwilioSignatureValidator(TOKEN).validate(URL, PARAMS, "é" * 28)


def test_empty_token_is_a_configuration_error() -> None:
    with pytest.raises(LocalProtocolError):
        TwilioSignatureValidator("")


# --- the public URL ---------------------------------------------------------


def test_public_url_from_configured_host() -> None:
    assert public_url("example.ngrok.app", b"/webhooks/twilio/voice?a=1&b=%20") == (
        "https://example.ngrok.app/webhooks/twilio/voice?a=1&b=%20"
    )
    assert public_url("https://example.ngrok.app/", "/x") == "https://example.ngrok.app/x"
    assert public_url("example.com:8443", "/x") == "https://example.com:8443/x"
    assert media_stream_url("example.ngrok.app", b"/ws/stream/CA1?junk=1") == (
        "wss://example.ngrok.app/ws/stream/CA1"
    )
    with pytest.raises(LocalProtocolError):
        public_url("example.com/evil", "/x")


def test_media_stream_upgrade_signed_over_wss_url() -> None:
    url = media_stream_url("example.ngrok.app", "/ws/stream/CA1")
    oracle = RequestValidator(TOKEN)
    sig = oracle.compute_signature(url, {})
    v = TwilioSignatureValidator(TOKEN)
    v.validate_request(url=url, headers=[(b"x-twilio-signature", sig.encode())], body=b"")
    # signed over https:// instead: refused (PROTOCOLS.md §1.2 step 8)
    bad = oracle.compute_signature(url.replace("wss://", "https://"), {})
    with pytest.raises(SignatureError):
        v.validate_request(url=url, headers=[(b"X-Twilio-Signature", bad.encode())])
    # an explicit :80 also validates for wss (the official add_port quirk)
    quirk = oracle.compute_signature("wss://example.ngrok.app:80/ws/stream/CA1", {})
    v.validate(url, None, quirk)


# --- whole requests -----------------------------------------------------------


def _form_body(pairs: list[tuple[str, str]]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(pairs).encode()


def test_validate_request_form_returns_the_form() -> None:
    body = _form_body([*PARAMS.items(), ("FromCity", "")])
    sig = RequestValidator(TOKEN).compute_signature(URL, {**PARAMS, "FromCity": ""})
    headers = {
        "X-Twilio-Signature": sig,
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    form = TwilioSignatureValidator(TOKEN).validate_request(url=URL, headers=headers, body=body)
    assert form.get("CallSid") == "CA1234567890ABCDE"
    assert form.get("FromCity") == ""


def test_validate_request_json_and_errors() -> None:
    v = TwilioSignatureValidator(TOKEN)
    headers = [
        ("x-twilio-signature", "a9nBmqA0ju/hNViExpshrM61xv4="),
        ("content-type", "application/json"),
    ]
    assert len(v.validate_request(url=JSON_URL, headers=headers, body=JSON_BODY)) == 0
    with pytest.raises(RemoteProtocolError) as info:
        v.validate_request(url=URL, headers=[("content-type", "text/plain")], body=b"x")
    assert info.value.http_status == 415
    with pytest.raises(RemoteProtocolError) as info:
        v.validate_request(
            url=URL,
            headers=[("x-twilio-signature", "a"), ("X-Twilio-Signature", "b")],
            body=b"",
        )
    assert info.value.http_status == 400
    with pytest.raises(RemoteProtocolError) as info:
        v.validate_request(
            url=URL,
            headers=[("content-type", "application/x-www-form-urlencoded")],
            body=b"a=%FF",
        )
    assert info.value.http_status == 400


# --- HMAC-SHA256 shared keys ------------------------------------------------------


def test_signature_settings_header() -> None:
    assert signature_algorithm(None) == "HMAC_SHA1"
    assert signature_algorithm("") == "HMAC_SHA1"
    assert signature_algorithm("key=k1,algorithm=HMAC_SHA256") == "HMAC_SHA256"
    assert signature_algorithm("key=k1, algorithm = hmac_sha256 ") == "HMAC_SHA256"


def test_shared_key_sha256() -> None:
    secret = "shared-secret-value"
    sig = RequestValidator(secret).compute_signature(URL, PARAMS, "HMAC_SHA256")
    assert len(sig) == 44
    v = TwilioSignatureValidator(TOKEN, shared_keys={"k1": secret})
    v.validate(URL, PARAMS, sig, settings="key=k1,algorithm=HMAC_SHA256")
    with pytest.raises(SignatureError, match="unknown shared key"):
        v.validate(URL, PARAMS, sig, settings="key=k2,algorithm=HMAC_SHA256")
    with pytest.raises(SignatureError):  # SHA-256 signature without the header
        v.validate(URL, PARAMS, sig)
    with pytest.raises(SignatureError, match="unsupported"):
        v.validate(URL, PARAMS, sig, settings="key=k1,algorithm=HMAC_MD5")
    headers = {
        "x-twilio-signature": sig,
        "x-twilio-webhooks-signature-settings": "key=k1,algorithm=HMAC_SHA256",
        "content-type": "application/x-www-form-urlencoded",
    }
    v.validate_request(url=URL, headers=headers, body=_form_body(list(PARAMS.items())))


# --- Hypothesis: agree with the official validator on every case ------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_HOST = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9-]{1,8}){0,2}", fullmatch=True) | st.text(
    st.characters(codec="utf-8", blacklist_characters="/?#@[]"),
    min_size=1,
    max_size=10,
)
_PORT = st.none() | st.integers(0, 70000).map(str) | st.sampled_from(["", "abc", "443", "80", "08"])
_PATH = st.lists(_TEXT.filter(lambda s: "?" not in s and "#" not in s), max_size=3).map(
    lambda parts: "/" + "/".join(parts)
)
_QUERY = st.none() | st.lists(st.tuples(_TEXT, _TEXT), max_size=3).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)
)


@st.composite
def _urls(draw: Any) -> str:
    scheme = draw(st.sampled_from(["https", "http", "wss", "HTTPS"]))
    host = draw(_HOST)
    port = draw(_PORT)
    query = draw(_QUERY)
    url = f"{scheme}://{host}" + ("" if port is None else f":{port}") + draw(_PATH)
    return url if query is None else f"{url}?{query}"


class _MultiDict(dict[str, str]):
    """What the oracle accepts for repeated names (Flask's getall)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__()
        self.pairs = pairs
        for k, v in pairs:
            self.setdefault(k, v)

    def getall(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]


_NAMES = st.sampled_from(["CallSid", "From", "To", "Digits", "é", "a", "A", ""]) | _TEXT
_PAIRS = st.lists(st.tuples(_NAMES, _TEXT | st.just("")), max_size=8)


def _oracle_valid(token: str, url: str, params: Any, sig: str, alg: str) -> bool:
    try:
        return bool(RequestValidator(token).validate(url, params, sig, alg))
    except ValueError:  # the oracle's urlparse refuses the URL (bad port, bad IPv6)
        return False


def _ours_valid(token: str, url: str, form: FormData, sig: str, alg: str) -> bool:
    settings_header = None if alg == "HMAC_SHA1" else f"algorithm={alg}"
    try:
        TwilioSignatureValidator(token).validate(url, form, sig, settings=settings_header)
    except SignatureError:
        return False
    return True


def _port_variants(url: str) -> list[str]:
    head, sep, tail = url.partition("://")
    host, slash, rest = tail.partition("/")
    out = [url]
    if ":" in host:
        out.append(f"{head}{sep}{host.split(':')[0]}{slash}{rest}")
    else:
        out += [f"{head}{sep}{host}:443{slash}{rest}", f"{head}{sep}{host}:80{slash}{rest}"]
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    token=st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
    url=_urls(),
    pairs=_PAIRS,
    alg=st.sampled_from(["HMAC_SHA1", "HMAC_SHA256"]),
    choice=st.integers(0, 5),
    other=_urls(),
    data=st.data(),
)
def test_agrees_with_official_validator(
    token: str, url: str, pairs: list[tuple[str, str]], alg: str, choice: int, other: str, data: Any
) -> None:
    oracle = RequestValidator(token)
    params = _MultiDict(pairs)
    form = FormData.from_items(pairs)
    variants = _port_variants(url)
    if choice <= 2:  # a genuine signature over one spelling of the URL
        sig = oracle.compute_signature(variants[min(choice, len(variants) - 1)], params, alg)
    elif choice == 3:  # a signature over another URL
        sig = oracle.compute_signature(other, params, alg)
    elif choice == 4:  # a genuine signature with one character changed
        sig = oracle.compute_signature(url, params, alg)
        i = data.draw(st.integers(0, len(sig) - 1))
        sig = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :]
    else:  # the params tampered after signing
        sig = oracle.compute_signature(url, params, alg)
        form = FormData.from_items([*pairs, ("Extra", "1")])
        params = _MultiDict([*pairs, ("Extra", "1")])
    expected = _oracle_valid(token, url, params, sig, alg)
    event(f"oracle says valid={expected}")
    assert _ours_valid(token, url, form, sig, alg) == expected


@settings(max_examples=100, deadline=None)
@given(url=_urls(), body=st.binary(max_size=64), tamper=st.booleans())
def test_json_bodies_agree_with_official_validator(url: str, body: bytes, tamper: bool) -> None:
    url = url.split("#", 1)[0]  # Twilio's URLs carry no fragment
    text = body.decode("latin-1")  # any str the oracle can hash as UTF-8
    raw = text.encode("utf-8")
    digest = hashlib.sha256(raw).hexdigest()
    full = f"{url}{'&' if '?' in url else '?'}bodySHA256={digest}"
    sig = RequestValidator(TOKEN).compute_signature(full, {})
    sent = raw + b"x" if tamper else raw
    expected = _oracle_valid(TOKEN, full, sent.decode("utf-8"), sig, "HMAC_SHA1")
    try:
        TwilioSignatureValidator(TOKEN).validate(full, None, sig, body=sent)
        ours = True
    except SignatureError:
        ours = False
    assert ours == expected
