"""Secrets never shown: the one redaction every message, log line and file we write goes through.

Two kinds of redaction:
- known values: the values of the environment variables that hold credentials (HF_TOKEN,
  HUGGING_FACE_HUB_TOKEN, any *_API_KEY / *_TOKEN / *_SECRET, and the variable a config names
  with `api_key_env`, registered with `register_env`), wherever they appear;
- patterns (`redact`, for messages, logs and configuration files only): `sk-...`, `hf_...`
  and `Bearer ...` token shapes, since a server may echo a key we never saw as a value.
Record files (teacher samples) get only the known values: a sample may legitimately talk
about "sk-" strings, and data is never rewritten by guesswork. Publishing data is stricter:
`token_shape` finds a whole token's shape in a row, and publish-data refuses the row unless told
the string is no secret.

Keys written into a URL (`http://user:KEY@host/v1`, `...?api_key=KEY`): `register_urls` makes
the keys in every URL a configuration names known values (so a record, a log or a report that
quotes the URL, or a server that echoes it, is scrubbed like any other secret), and
`public_url` is the URL as it is stored (a record's teacher.base_url): without its credentials.
`redact` also removes them from any URL in a message or a configuration file.
"""

from __future__ import annotations

import os
import re

SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY", "DEEPSEEK_API_KEY")
_SECRET_NAME = re.compile(r"(_API_KEY|_TOKEN|_SECRET|_PASSWORD)$")
MIN_SECRET = 8  # shorter values would redact ordinary words
MASK = "<redacted>"
_PATTERNS = re.compile(
    r"(?P<bearer>\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]{6,}"
    r"|\bsk-[A-Za-z0-9_-]{8,}"
    r"|\bhf_[A-Za-z0-9]{8,}"
)
# user:password@ in a URL, and query parameters that carry keys (?api_key=, &token=, ...)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@?#]+)@")
_URL_KEY_PARAM = re.compile(r"(?P<name>[?&;](?:[A-Za-z0-9_.-]*(?:key|token|secret|password|passwd|auth|sig|signature|credential)s?)=)"
                            r"(?P<value>[^&;#\s'\"]+)", re.IGNORECASE)
_registered: set[str] = set()
_values: set[str] = set()  # secrets taken from configurations (keys in URLs)
# A whole token, as published data would leak it (longer than the log patterns: fewer false alarms in prose).
_TOKEN_SHAPES = {
    "a Hugging Face token (hf_...)": re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    "an API key (sk-...)": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    "a Bearer token": re.compile(r"\b[Bb]earer\s+[A-Za-z0-9._~+/=-]{20,}"),
    "a private key block": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
}


def register_env(name: str | None) -> None:
    """Treat the value of environment variable `name` as a secret from now on (e.g. api_key_env)."""
    if name:
        _registered.add(name)


def public_url(url: str) -> str:
    """`url` without credentials: no user:password@, and the values of key-like query parameters masked."""
    url = _URL_USERINFO.sub(lambda m: m["scheme"], url)
    return _URL_KEY_PARAM.sub(lambda m: m["name"] + MASK, url)


def url_secrets(text: str) -> list[str]:
    """The credentials written into the URLs in `text` (passwords, tokens in place of a user, key parameters)."""
    found = []
    for match in _URL_USERINFO.finditer(text):
        user, _, password = match["userinfo"].partition(":")
        found += [password or user, match["userinfo"]]
    found += [m["value"] for m in _URL_KEY_PARAM.finditer(text)]
    return [value for value in found if len(value) >= MIN_SECRET and value != MASK]


def register_urls(values: object) -> None:
    """Treat the credentials in every URL among `values` (a configuration as plain data) as secrets from now on."""
    if isinstance(values, str):
        if "://" in values:
            _values.update(url_secrets(values))
    elif isinstance(values, dict):
        for value in values.values():
            register_urls(value)
    elif isinstance(values, (list, tuple)):
        for value in values:
            register_urls(value)


def known_values() -> list[str]:
    """Values of the credential variables set in this environment (and keys found in URLs), longest first."""
    names = set(SECRET_ENV) | _registered | {name for name in os.environ if _SECRET_NAME.search(name)}
    values = {os.environ.get(name, "") for name in names} | _values
    return sorted((v for v in values if len(v) >= MIN_SECRET), key=len, reverse=True)


def redact_values(text: str) -> str:
    """`text` with every known secret value replaced."""
    for value in known_values():
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact(text: str) -> str:
    """`text` with known secret values and token-shaped strings (sk-, hf_, Bearer) replaced."""
    text = public_url(redact_values(text))
    return _PATTERNS.sub(lambda m: (m["bearer"] or "") + MASK, text)


def token_shape(text: str) -> str | None:
    """What kind of token-shaped string `text` holds (`hf_` and 30 or more letters or digits, `sk-...`,
    `Bearer ...`, a private key block), or None."""
    return next((kind for kind, pattern in _TOKEN_SHAPES.items() if pattern.search(text)), None)


def redact_bytes(data: bytes) -> bytes:
    """`redact` for bytes (log pipes); undecodable bytes pass through as they are."""
    text = data.decode("utf-8", "replace")
    if not known_values() and not _PATTERNS.search(text) and public_url(text) == text:
        return data
    return redact(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def scrubber():
    """A function that redacts the known secret values from a line; the identity when none is set.

    For writers of many lines: the environment is read once, and costs nothing without secrets.
    """
    values = known_values()
    if not values:
        return lambda text: text

    def scrub(text: str) -> str:
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    return scrub
