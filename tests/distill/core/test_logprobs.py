"""The log-probabilities side file: frames round-trip, torn tails are found and mended, strangers refused."""

from __future__ import annotations

import numpy as np
import pytest

from distill.core import logprobs
from distill.core.errors import InputError


def sample(n: int = 5, k: int = 3, seed: int = 0) -> logprobs.TokenLogprobs:
    rng = np.random.default_rng(seed)
    top = -np.sort(rng.random((n, k)) * 5, axis=1)
    ids = rng.integers(0, 150000, n)
    return logprobs.TokenLogprobs.build(ids, top[:, 0], rng.integers(0, 150000, (n, k)), top, k)


def test_frame_round_trips_and_costs_6_plus_6k_bytes_per_token():
    lp = sample(n=40, k=20)
    frame = logprobs.encode("p1#0", lp)
    record_id, back = logprobs.decode(frame)
    assert record_id == "p1#0"
    assert np.array_equal(back.ids, lp.ids) and np.array_equal(back.top_ids, lp.top_ids)
    assert np.allclose(back.top_logprobs.astype(np.float32), lp.top_logprobs.astype(np.float32))
    header = len(b'{"id": "p1#0", "n": 40, "k": 20}')
    assert len(frame) == 4 + 4 + header + 40 * (6 + 6 * 20) + 4


def test_short_top_lists_are_padded():
    lp = logprobs.TokenLogprobs.build([7, 8], [-0.1, -0.2], [[7, 1], [8]], [[-0.1, -3.0], [-0.2]], k=2)
    assert lp.top_ids.tolist() == [[7, 1], [8, -1]]
    assert np.isneginf(lp.top_logprobs[1, 1])


def test_scan_finds_frames_and_a_torn_tail_and_mend_cuts_orphans(tmp_path):
    path = tmp_path / "t.logprobs"
    frames = [logprobs.encode(f"p{i}#0", sample(seed=i)) for i in range(3)]
    path.write_bytes(b"".join(frames) + frames[0][:17])  # a crash in the middle of a fourth frame
    index = logprobs.scan(path)
    assert list(index.frames) == ["p0#0", "p1#0", "p2#0"] and index.torn == 17
    assert np.array_equal(index.read("p1#0").ids, sample(seed=1).ids)
    # p2's trace line never made it: its frame and the torn bytes go, p0 and p1 stay
    assert logprobs.mend(path, {"p0#0", "p1#0"}) == {"p0#0", "p1#0"}
    assert path.read_bytes() == b"".join(frames[:2])


def test_a_damaged_frame_is_refused_by_checksum(tmp_path):
    path = tmp_path / "t.logprobs"
    frame = bytearray(logprobs.encode("p0#0", sample()))
    frame[-10] ^= 0xFF
    path.write_bytes(bytes(frame))
    with pytest.raises(InputError, match="checksum"):
        logprobs.scan(path).read("p0#0")


def test_a_file_that_is_not_ours_is_refused(tmp_path):
    path = tmp_path / "t.logprobs"
    path.write_bytes(b"hello world, not frames")
    with pytest.raises(InputError, match="not a log-probabilities file"):
        logprobs.scan(path)


def test_frame_copier_writes_nothing_without_frames_and_atomically_otherwise(tmp_path):
    src = tmp_path / "in.logprobs"
    src.write_bytes(logprobs.encode("a#0", sample()) + logprobs.encode("b#0", sample(seed=1)))
    index = logprobs.scan(src)
    with logprobs.FrameCopier(tmp_path / "none.jsonl") as copier:
        assert not copier.copy(index, "zzz")
    assert not (tmp_path / "none.logprobs").exists()
    with logprobs.FrameCopier(tmp_path / "out.jsonl") as copier:
        copier.copy(index, "b#0")
    assert list(logprobs.scan(tmp_path / "out.logprobs").frames) == ["b#0"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
