"""driftwatch.redaction: the one function between a credential and every place text leaves driftwatch."""

from __future__ import annotations

import base64
import logging
import secrets
import sys

import httpx
import pytest

from driftwatch.connectors._http import ERROR_TEXT_LIMIT, error_excerpt
from driftwatch.redaction import (
    excerpt,
    install_log_redaction,
    is_variable_name,
    looks_like_secret,
    redact,
    redacting_output,
    remember,
    remember_url,
)


def canary() -> str:
    return f"canary-{secrets.token_hex(12)}"


def encoded_forms(secret: str) -> list[str]:
    """How a secret can show up encoded: base64 at each offset a longer text can put it at (inside a Basic
    header after a user name of any length), less the edge characters it shares with its neighbours."""
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(b"x" * offset + secret.encode()).decode()
        forms.append(encoded[offset + 2 : -3])
    return forms


def assert_clean(text: str, secret: str) -> None:
    assert secret not in text, text
    for form in encoded_forms(secret):
        assert form not in text, (form, text)


def test_a_remembered_secret_is_replaced_in_clear_url_encoded_and_in_base64_at_any_offset():
    secret = canary() + "+/="  # characters that URL-encoding and base64 treat apart
    remember(secret)
    for user in ("", "a", "ab", "abc", "client-7"):
        basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
        urlsafe = base64.urlsafe_b64encode(f"{user}:{secret}".encode()).decode()
        for text in (f"Authorization: Basic {basic}", f"raw {basic} end", f"token={urlsafe}"):
            assert_clean(redact(text), secret)
    assert_clean(redact(f"secret={httpx.QueryParams({'k': secret})}"), secret)
    assert redact(f"the key is {secret}.") == "the key is ***."


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Authorization: Basic c29tZS1jbGllbnQ6c29tZS1zZWNyZXQ=", "c29tZS1jbGllbnQ6c29tZS1zZWNyZXQ="),
        ("{'authorization': 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl'}", "eyJhbGciOiJIUzI1NiJ9"),
        ('{"x-ometria-auth": "0f3b9a77c2e14d6b"}', "0f3b9a77c2e14d6b"),
        ("GET /v1/items?api_key=k9d8f7g6h5&page=2", "k9d8f7g6h5"),
        ("sftp://exports:Hunter2-2026@ftp.example/out", "Hunter2-2026"),
        ("mailtos://ops:mail-pass-42@smtp.example", "mail-pass-42"),
        ("POST https://hooks.slack.com/services/T0001/B0001/aBcDeFgHiJkLmNoPqRsTuVwX failed", "aBcDeFgHiJkLmN"),
        ("key pk_2b9c8e7f6a5d4c3b2a1f0e9d8c7b6a5d4c refused", "pk_2b9c8e7f6a5d4c"),
        ("slack token xoxb-1234567890-abcdefghij in the body", "xoxb-1234567890"),
        ('X-WSSE: UsernameToken Username="acme", PasswordDigest="ZmFrZWRpZ2VzdA==", Nonce="n"', "ZmFrZWRpZ2VzdA=="),
    ],
)
def test_credentials_are_recognised_by_their_shape_whoever_they_belong_to(text, hidden):
    assert hidden not in redact(text)
    assert "***" in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "the basic commission rate is 12%",
        "author: J. Smith; status: authorised; 5 tests passed",
        "sources.klaviyo: environment variable KLAVIYO_API_KEY (api_key_env) is not set",
        "sources.bluecherry.sftp_password_env: expected the name of an environment variable",
        "report written to /srv/reports/driftwatch-20261202T190639-6b4730.html",
        "00112-010-XL on klaviyo: klaviyo publishes 6 but ERP available-to-sell is 0",
    ],
)
def test_ordinary_text_is_left_as_it_is(text):
    assert redact(text) == text


def test_an_excerpt_is_redacted_before_it_is_cut_so_no_secret_leaves_its_start():
    """A key straddling the cut: cutting first would leave its first characters in the message."""
    secret = canary()
    remember(secret)
    for start in range(ERROR_TEXT_LIMIT - len(secret), ERROR_TEXT_LIMIT + 2):
        text = "x" * start + secret + " and more"
        shown = excerpt(text, ERROR_TEXT_LIMIT)
        assert len(shown) <= ERROR_TEXT_LIMIT
        assert secret[:6] not in shown, start


def test_an_error_body_is_redacted_then_cut_whatever_the_platforms_extractor_does():
    secret = canary()
    remember(secret)
    body = "e" * 290 + f" key={secret}"
    response = httpx.Response(401, json={"message": body}, request=httpx.Request("GET", "https://x.example/a"))
    assert secret[:6] not in error_excerpt(response, lambda r: r.json()["message"])
    assert secret[:6] not in error_excerpt(response, lambda r: r.json()["no such field"])  # falls back to the body


def test_an_excerpt_of_file_content_is_short_and_shows_control_characters():
    assert excerpt("KLAVIYO_API_KEY=pk_2b9c8e7f6a5d4c3b2a1f0e9d8c7b6a5d4c\nnext line\x00", 30) == (
        "KLAVIYO_API_KEY=*** next line…"
    )
    assert excerpt("a\x00b\x1bc", 40) == "a\\x00b\\x1bc"


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("pk_2b9c8e7f6a5d4c3b2a1f0e9d8c7b6a5d4c", True),  # Klaviyo private key
        ("a1b2c3d4-e5f6-4789-abcd-0123456789ab", True),  # a UUID-like key (Mirakl's shop keys)
        ("3f9a8B2cD7e1F0a9b8C7d6E5", True),  # a random token
        ("sftp://user:pw123456@host/folder", True),
        ("https://hooks.slack.com/services/T/B/x", True),  # the URL is the secret
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general", True),  # apprise's token form
        ("https://intranet.example/driftwatch/?token=abc", True),
        ("https://a.klaviyo.com", False),
        ("mailto://relay.internal?to=cx@example.com", False),
        ("https://intranet.example/driftwatch/reports-2026", False),
        ("{Style}-{Color #}-{Size}", False),
        ("America/New_York", False),
        ("MIRAKL_DE_API_KEY_2026", False),
        ("2026-11-23T02:00:00Z", False),
        ("/srv/exports/bluecherry/2026-11-23", False),
        ("customer-service", False),
    ],
)
def test_looks_like_secret(value, secret):
    assert looks_like_secret(value) is secret


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("KLAVIYO_API_KEY", True),
        ("mirakl_fr_key", True),
        ("pk_2b9c8e7f6a5d4c3b2a1f0e9d8c7b6a5d4c", False),  # valid characters, but a key
        ("https://hooks.slack.com/services/T/B/x", False),
        ("MY KEY", False),
        ("", False),
        (["A"], False),
    ],
)
def test_is_variable_name(value, name):
    assert is_variable_name(value) is name


def test_a_remembered_url_hides_its_password_and_tokens_but_not_its_words():
    remember_url("json://hook:Pa55-word-9@127.0.0.1:8080/services/T0001/B0001/aBcDeFgHiJkLmNoPqRsTuVwX")
    text = redact("delivery to 127.0.0.1:8080/services failed with Pa55-word-9 and aBcDeFgHiJkLmNoPqRsTuVwX")
    assert "Pa55-word-9" not in text and "aBcDeFgHiJkLmNoPqRsTuVwX" not in text
    assert "127.0.0.1:8080/services failed" in text


def test_every_log_record_is_redacted_as_it_is_made_even_its_traceback(caplog):
    install_log_redaction()
    secret = canary()
    remember(secret)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").debug("sent %s", {"authorization": f"Klaviyo-API-Key {secret}"})
    try:
        raise ValueError(f"refused key {secret}")
    except ValueError:
        logging.getLogger("some.library").exception("failed")
    assert caplog.records
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in (record.exc_text or "")
    assert secret not in caplog.text


def test_what_the_command_line_writes_is_redacted(capfd):
    secret = canary()
    remember(secret)
    with redacting_output():
        print(f"stdout {secret}")
        print(f"stderr {secret}", file=sys.stderr)
    out, err = capfd.readouterr()
    assert out == "stdout ***\n" and err == "stderr ***\n"


def test_a_long_text_is_redacted_line_by_line_and_a_private_key_across_its_lines():
    filler = "catalogue_parity,high,bluecherry,mirakl,products,P1,price,10.00,12.00,authorised\n" * 200
    block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\nQWxhZGRpbjpvcGVu\n-----END RSA PRIVATE KEY-----\n"
    text = f"{filler}Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln\n{block}{filler}"
    shown = redact(text)
    assert "eyJhbGci" not in shown and "MIIEowIBAAKCAQEA7x" not in shown and "QWxhZGRpbjpvcGVu" not in shown
    assert shown.count("catalogue_parity,high") == 400 and shown.endswith(filler)
