"""What every publishing stage shares (`publish` for models, `publish-data` for datasets): the
folder is built beside the output and moved into place whole, it is refused when it holds a
token from the environment, and it is pushed with huggingface_hub.

The token for a push comes from HF_TOKEN or the saved login (`hf auth login`), read by
huggingface_hub itself: we never hold it, print it or write it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from distill.core.errors import StageError
from distill.core.paths import temporary
from distill.core.secrets import known_values

# In every folder a publishing stage writes: --overwrite replaces a folder only when it holds the
# mark of the same stage (a model folder that merely has a config.json may be a training run's).
MARK = ".distill-published"


def published_by(folder: Path, stage: str) -> bool:
    """Whether `folder` is one that publishing stage `stage` wrote (it holds the mark)."""
    try:
        return json.loads((folder / MARK).read_text(encoding="utf-8")).get("stage") == stage
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def staged(output: Path, stage: str) -> Iterator[Path]:
    """A fresh staging folder beside `output` (`.NAME.tmp-PID`); when the block finishes, it is
    checked for secrets, marked as `stage`'s, and replaces `output`. A failure leaves `output` as it was."""
    staging = temporary(output)  # an interrupted run's leftover is removed here
    staging.mkdir(parents=True)
    try:
        yield staging
        assert_no_secrets(staging)
        (staging / MARK).write_text(json.dumps({"stage": stage}) + "\n", encoding="utf-8")
        replace_folder(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_folder(staging: Path, output: Path) -> None:
    """Move the finished folder into place; an old output is removed only once the new one is complete."""
    old = temporary(output, "old")
    if output.exists():
        os.replace(output, old)
    os.replace(staging, output)
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def assert_no_secrets(folder: Path, chunk: int = 64 << 20) -> None:
    """Refuse to publish a folder that contains the value of a token in the environment.

    Files are read in chunks that overlap by the longest token, so a 100 GB GGUF is scanned
    without being loaded and a token across a chunk boundary is still found. Compressed files
    (Parquet pages, PNG) hide their text from this scan: their writers check what goes in.
    """
    secrets = [value.encode() for value in known_values()]
    if not secrets:
        return
    overlap = max(map(len, secrets)) - 1
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        with open(path, "rb") as handle:
            tail = b""
            while block := handle.read(chunk):
                window = tail + block
                if any(secret in window for secret in secrets):
                    raise StageError(f"refusing to publish: {path.relative_to(folder)} contains a token from the environment")
                tail = window[-overlap:] if overlap else b""


def push(folder: Path, repo_id: str, private: bool, api=None, repo_type: str = "model") -> str:
    """Upload with huggingface_hub (`api`: an `HfApi`, a new one by default); returns the commit's URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = api or HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type=repo_type)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message="Upload with distill",
                                   ignore_patterns=[MARK])
    except HfHubHTTPError as exc:  # the hub answered: its status and its reason
        raise StageError(f"upload to {repo_id} failed: {_hub_reason(exc)}; {folder} is complete, push it again when fixed") from None
    except Exception as exc:
        if not _unreachable(exc) and not isinstance(exc, (OSError, ValueError)):
            raise
        what = "cannot reach the hub" if _unreachable(exc) else "upload failed"
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StageError(f"{what} ({getattr(api, 'endpoint', 'hub')}) to upload {repo_id}: {reason}; "
                         f"{folder} is complete, push it again when the hub is reachable") from None
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    return str(getattr(commit, "commit_url", None) or f"{api.endpoint}/{prefix}{repo_id}")


# What a request that never reached the hub raises (httpx's, requests' and huggingface_hub's own names).
_NETWORK_ERRORS = {"TransportError", "ConnectError", "ConnectTimeout", "NetworkError", "TimeoutException", "ConnectionError",
                   "OfflineModeIsEnabled", "ProxyError", "SSLError"}


def _unreachable(exc: BaseException | None) -> bool:
    """The hub could not be reached (no network, a refused connection, offline mode), in the chain of causes."""
    seen = 0
    while exc is not None and seen < 10:
        if any(cls.__name__ in _NETWORK_ERRORS for cls in type(exc).__mro__):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _hub_reason(exc: BaseException) -> str:
    """'HTTP 400 Bad Request: <the server's message>' from a hub error (its first line alone may be empty)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    phrase = getattr(response, "reason_phrase", None) or getattr(response, "reason", None) or ""
    message = getattr(exc, "server_message", None) or " ".join(line for line in str(exc).splitlines()[1:] if line.strip())
    head = f"HTTP {status} {phrase}".strip() if status else (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"{head}: {' '.join(message.split())}" if message and message.strip() else head
