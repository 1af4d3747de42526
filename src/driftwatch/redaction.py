"""Redaction: no credential leaves driftwatch in what it prints, logs, stores or sends.

`redact(text)` is the one function every such path calls on text that came from the outside world (a
platform's error body, an exception from a library, a file's header row). It replaces two kinds of evidence:

- values: every credential driftwatch reads from the environment is remembered (`remember`, called where
  the value is read) and replaced wherever it appears, in clear, URL-encoded, or in base64 at any alignment
  (an `Authorization: Basic` header joins the secret to a user name before encoding it, so the secret's
  base64 starts at any of three offsets);
- shapes: text that is a credential by its form, whoever's it is: the credential of an `Authorization` (or
  `X-…-Auth`, `…-Key`, `…Token`) header or parameter, a URL's password, Slack and other webhook tokens, keys
  with a known prefix (Klaviyo's `pk_`, Slack's `xoxb-`, GitHub's `ghp_`, AWS's `AKIA`), JSON web tokens
  and private key blocks.

`excerpt(text, limit)` is what an error quotes of outside text: redacted first, then control characters
made visible and the whole cut to `limit` characters (redacting after cutting could leave the start of a
secret that straddles the cut).

`looks_like_secret(value)` is the configuration's test for a value that must live in the environment
instead: the shapes above, plus any high-entropy token of 20 characters or more (an API key, a UUID-like
key, a client secret), and URLs that carry a password, a token in their path or query, or are a webhook.
`is_variable_name(value)` tells an environment variable's name from a secret pasted in its place.

Every logging record is redacted as it is made (`logging.setLogRecordFactory`, chained to any factory
already set), and `redacting_output()` redacts everything the command line writes to stdout and stderr.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import re
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

REDACTED = "***"
NOT_A_VARIABLE = (
    "expected the name of an environment variable (e.g. KLAVIYO_API_KEY); this value is not one, and may be the "
    "credential itself (not shown): put the credential in an environment variable and name that variable here"
)
MIN_SECRET_LENGTH = 6  # shorter values are too common to replace everywhere; no real credential is that short

# A header or parameter whose name says it carries a credential, and its value (after an optional scheme).
_NAMED = re.compile(
    r"(?i)(?P<name>\b[\w-]*?(?:authori[sz]ation|authentication|auth(?![a-z])|api[-_]?key|access[-_]?key|"
    r"private[-_]?key|secret|passw(?:or)?d|passphrase|token|signature|wsse|credentials?|session[-_]?id)"
    r"(?:[\w-]*[\w])?)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<scheme>(?:basic|bearer|token|digest|klaviyo-api-key|usernametoken)\s+)?"
    r"(?P<value>[^\s\"',;&}\]]+)"
)
_SCHEMES = re.compile(r"(?i)\b(?P<scheme>basic|bearer)\s+(?P<value>[A-Za-z0-9._~+/=-]{8,})")
_ENCODED = re.compile(r"[0-9+/=._~-]|.[A-Z]")  # what a credential has and an English word after "basic" has not
_URL_PASSWORD = re.compile(r"(?i)(?P<user>\b[a-z][a-z0-9+.-]*://[^\s/:@]*):(?P<value>[^\s@/]+)@")
_PREFIXED = re.compile(
    r"(?:\b(?:pk|sk|rk)_(?:live_|test_)?[A-Za-z0-9]{16,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}|\bxapp-[A-Za-z0-9-]{10,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"
    r"|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_-]{35}"
    r"|\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+)"
)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)")
_WEBHOOK = re.compile(
    r"(?i)(?P<base>\bhooks\.slack\.com/(?:services|workflows|triggers)/|\bdiscord(?:app)?\.com/api/webhooks/"
    r"|\.webhook\.office\.com/webhookb2/|\boutlook\.office\.com/webhook/)(?P<value>[^\s\"'<>]+)"
)
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_UPPER_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")  # SOME_VARIABLE: a name, not a value
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")

_lock = threading.Lock()
_known: set[str] = set()  # every form of every remembered secret
_known_pattern: re.Pattern[str] | None = None


def remember(secret: str | None) -> None:
    """From now on, redact `secret` (and its URL-encoded and base64 forms) wherever it appears."""
    if not secret or len(secret.strip()) < MIN_SECRET_LENGTH:
        return
    forms = _forms(secret.strip())
    global _known_pattern
    with _lock:
        if forms <= _known:
            return
        _known.update(forms)
        _known_pattern = re.compile("|".join(re.escape(f) for f in sorted(_known, key=len, reverse=True)))


def remember_url(url: str) -> None:
    """Remember the parts of a URL that may be credentials: its password, and the path segments and query
    values that hold a digit or are long (an apprise URL's tokens, a webhook's secret path). Not its user
    name, host or plain words: those appear in ordinary messages."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        remember(url)
        return
    remember(url)
    remember(password)
    pieces = [*parts.path.split("/"), *(v for _, v in parse_qsl(parts.query))]
    for piece in pieces:
        if len(piece) >= 16 or (len(piece) >= 8 and any(c.isdigit() for c in piece)):
            remember(piece)


def redact(text: str) -> str:
    """`text` with every remembered secret and every credential-shaped piece replaced by ***."""
    if not text:
        return text
    pattern = _known_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return _redact_shapes(text)


def _redact_shapes(text: str) -> str:
    """The shapes, each tried only on the lines holding a text every match of it holds: a findings export of
    many megabytes with no credential in it costs a few substring scans, not a regular expression's."""
    lowered = text.lower()
    if "-----begin" in lowered:  # a private key spans lines
        text = _PRIVATE_KEY.sub(REDACTED, text)
        lowered = text.lower()
    active = [shape for shape in _SHAPES if any(clue in lowered for clue in shape[2])]
    if not active:
        return text
    lines = text.splitlines(keepends=True) if len(text) > 4096 else [text]
    for i, line in enumerate(lines):
        low = line.lower() if len(lines) > 1 else lowered
        for pattern, replace, clues in active:
            if any(clue in low for clue in clues):
                line = pattern.sub(replace, line)
        lines[i] = line
    return "".join(lines)


def excerpt(text: object, limit: int = 60) -> str:
    """What an error may quote of outside text: redacted, control characters shown as `\\xNN`, newlines as
    spaces, cut to `limit` characters with an ellipsis."""
    clean = redact(str(text))
    clean = re.sub(r"[\r\n\t]+", " ", clean)
    clean = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", clean).strip()
    return clean if len(clean) <= limit else clean[: max(limit - 1, 1)].rstrip() + "…"


def looks_like_secret(value: str) -> bool:
    """Whether a configuration value is a credential by its shape (see the module's description)."""
    value = value.strip()
    if not value:
        return False
    if "://" in value:
        return _url_carries_secret(value)
    if _redact_shapes(value) != value:  # shapes only: what was remembered says nothing about this value
        return True
    return _high_entropy(value)


def is_variable_name(value: object) -> bool:
    """Whether `value` can be the name of an environment variable (and is not a credential pasted in its
    place: `pk_9f8e…` is a valid name by its characters, but a key by its shape)."""
    return isinstance(value, str) and bool(_VARIABLE.match(value)) and not looks_like_secret(value)


def _named_value(match: re.Match[str]) -> str:
    name, value = match["name"], match["value"]
    core = value.rstrip(":.)")
    if name.lower().endswith("_env") or len(core) < 4 or value.startswith(REDACTED):
        return match.group(0)  # a setting naming a variable (`api_key_env: ...`), or nothing worth hiding
    if (_UPPER_NAME.match(core) and not _high_entropy(core)) or core.isalpha():
        return match.group(0)  # a variable's name (`KLAVIYO_API_KEY`) or a word ("Authentication: failed")
    return f"{name}{match['sep']}{match['scheme'] or ''}{REDACTED}"


def _scheme_value(match: re.Match[str]) -> str:
    if not _ENCODED.search(match["value"]):
        return match.group(0)  # "basic commission": a word, not a credential
    return f"{match['scheme']} {REDACTED}"


def _clues(words: str) -> tuple[str, ...]:
    return tuple(words.split())


# Each shape, what replaces a match of it, and the lower-case texts one of which every match holds.
_SHAPES: tuple[tuple[re.Pattern[str], Any, tuple[str, ...]], ...] = (
    (_PREFIXED, REDACTED, _clues("pk_ sk_ rk_ xox xapp- ghp_ gho_ ghu_ ghs_ ghr_ github_pat_ akia aiza eyj")),
    (_URL_PASSWORD, lambda m: f"{m['user']}:{REDACTED}@", ("://",)),
    (_WEBHOOK, lambda m: f"{m['base']}{REDACTED}", ("hooks.slack.com", "discord", "webhook")),
    (
        _NAMED,
        _named_value,
        _clues(
            "auth api_key api-key apikey access_key access-key private_key private-key secret passw token signature "
            "wsse credential session"
        ),
    ),
    (_SCHEMES, _scheme_value, ("basic", "bearer")),
)


def _forms(secret: str) -> set[str]:
    """The secret in clear, URL-encoded, and the part of its base64 (standard and URL-safe) that depends on
    the secret alone, at each of the three offsets it can start at inside a longer encoded text."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    raw = secret.encode()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = math.ceil(offset * 8 / 6)
        end = (offset + len(raw)) * 8 // 6
        core = encoded[start:end]
        if len(core) >= MIN_SECRET_LENGTH:
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _url_carries_secret(value: str) -> bool:
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return True  # unreadable: refuse rather than guess
    if password or _WEBHOOK.search(value) or _PREFIXED.search(value):
        return True
    userinfo = parts.netloc.rpartition("@")[0]
    pieces = [*parts.path.split("/"), *userinfo.split(":"), parts.fragment]
    pieces += [v for _, v in parse_qsl(parts.query)]
    named = [k for k, _ in parse_qsl(parts.query) if _NAMED.match(f"{k}=x")]
    return bool(named) or any(_high_entropy(p) or _token_in_url(p) for p in pieces if p)


def _token_in_url(piece: str) -> bool:
    """A URL piece that is a token: 16+ letters and digits in one run, mixing two of upper case, lower case
    and digits (an apprise or webhook token; `reports-archive-2026` is words)."""
    for run in re.split(r"[_.~-]+", piece):
        classes = [re.findall(pattern, run) for pattern in (r"[A-Z]", r"[a-z]", r"\d")]
        if len(run) >= 16 and run.isalnum() and sum(len(found) >= 2 for found in classes) >= 2:
            return True
    return False


def _high_entropy(value: str) -> bool:
    """A token of 20+ characters, no spaces, not a path, with a run of 8 or more mixing letters and digits
    (`MIRAKL_DE_API_KEY_2026` has none: words and numbers apart; nor has a timestamp), and about as random
    as a generated key (3.5 bits a character or more: English words and dates stay well below)."""
    if len(value) < 20 or re.search(r"\s", value) or value[0] in "/.~{":
        return False
    runs = re.split(r"[_.:/-]+", value)
    if not any(len(r) >= 8 and len(re.findall(r"\d", r)) >= 2 and len(re.findall(r"[A-Za-z]", r)) >= 2 for r in runs):
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= 3.5


# --- where text leaves the process ---------------------------------------------------------------------


def _redacting_factory(factory: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: leave it to logging's own error handling
            return record
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    make.redacting = True  # type: ignore[attr-defined]
    return make


def install_log_redaction() -> None:
    """Redact every logging record as it is made, whichever logger makes it (httpx, apprise, paramiko...)."""
    with _lock:
        current = logging.getLogRecordFactory()
        if not getattr(current, "redacting", False):
            logging.setLogRecordFactory(_redacting_factory(current))


class _RedactingStream(io.TextIOBase):
    """A text stream that redacts what it is given before passing it on."""

    def __init__(self, wrapped: TextIO):
        self._wrapped = wrapped

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError("a text stream takes str")
        self._wrapped.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._wrapped.flush()

    def isatty(self) -> bool:
        return self._wrapped.isatty()

    def fileno(self) -> int:
        return self._wrapped.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._wrapped, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._wrapped, "errors", None)


@contextmanager
def redacting_output() -> Iterator[None]:
    """Everything written to stdout and stderr inside the block is redacted first."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _RedactingStream(sys.stdout), _RedactingStream(sys.stderr)  # type: ignore[assignment]
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError, ValueError):
                stream.flush()
        sys.stdout, sys.stderr = saved


install_log_redaction()
