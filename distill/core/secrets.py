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
_registered: set[str] = set()
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


def known_values() -> list[str]:
    """Values of the credential variables set in this environment, longest first."""
    names = set(SECRET_ENV) | _registered | {name for name in os.environ if _SECRET_NAME.search(name)}
    values = {os.environ.get(name, "") for name in names}
    return sorted((v for v in values if len(v) >= MIN_SECRET), key=len, reverse=True)


def redact_values(text: str) -> str:
    """`text` with every known secret value replaced."""
    for value in known_values():
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact(text: str) -> str:
    """`text` with known secret values and token-shaped strings (sk-, hf_, Bearer) replaced."""
    text = redact_values(text)
    return _PATTERNS.sub(lambda m: (m["bearer"] or "") + MASK, text)


def token_shape(text: str) -> str | None:
    """What kind of token-shaped string `text` holds (`hf_` and 30 or more letters or digits, `sk-...`,
    `Bearer ...`, a private key block), or None."""
    return next((kind for kind, pattern in _TOKEN_SHAPES.items() if pattern.search(text)), None)


def redact_bytes(data: bytes) -> bytes:
    """`redact` for bytes (log pipes); undecodable bytes pass through as they are."""
    if not known_values() and not _PATTERNS.search(data.decode("utf-8", "replace")):
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
