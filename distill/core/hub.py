"""The Hugging Face hub, when it cannot be reached: fail fast, from the local cache only.

huggingface_hub, transformers and datasets retry an unreachable hub for tens of seconds and
print a line per retry. Before a stage loads anything by hub id it calls `prepare_hub`: when
offline mode is set, or one short connection attempt to the hub fails, the libraries are put
in offline mode, so a cached model still loads and anything else fails at once, as one line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(text: str) -> bool:
    """'owner/name' that is not a local path: what the hub would be asked for."""
    return bool(_HUB_ID.match(text)) and not text.startswith((".", "/", "~")) and not Path(text).exists()


PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """Whether offline mode is set (HF_HUB_OFFLINE, or transformers' older TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(name, "").lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.cache
def reachable() -> bool:
    """One TCP connection to the hub's host (HF_ENDPOINT), a few seconds at most."""
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def go_offline() -> None:
    """Offline mode for this process, in the environment and in the libraries already imported."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[name] = "1"
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.constants as constants

        constants.HF_HUB_OFFLINE = True
    if "datasets" in sys.modules:
        with contextlib.suppress(ImportError, AttributeError):
            import datasets.config

            datasets.config.HF_HUB_OFFLINE = True


_why_offline: list[str] = []  # why this process uses the cache only


def prepare_hub() -> bool:
    """Call before loading by hub id; True when the hub can be used, False when only the cache can."""
    if not _why_offline:
        if offline():
            _why_offline.append("offline mode is set (HF_HUB_OFFLINE)")
        elif not reachable():
            _why_offline.append("the hub cannot be reached")
    if _why_offline:
        go_offline()
        return False
    return True


def unavailable(name: str) -> str:
    """The one-line reason a hub id did not load while the hub could not be used."""
    why = _why_offline[0] if _why_offline else "the hub did not answer"
    return f"'{name}' is not a local path and not in the hub cache, and {why}; give a local path or download it first"


def check_model(name: str, field: str) -> None:
    """A model named by path or hub id can be loaded: a local-looking path exists, a hub id is
    reachable or cached. One `InputError` otherwise, before anything is loaded or written."""
    from distill.core.errors import InputError

    if Path(name).exists():
        return
    if not is_hub_id(name):
        raise InputError("no such model directory", where=name, field=field)
    if prepare_hub():
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise InputError(unavailable(name), where=name, field=field)
