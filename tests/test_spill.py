"""KeptArray: the copy update() restores on bad input, on disk when it is large."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from distlda.io.spill import KeptArray


def _array(shape=(300, 7), dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(0).random(shape).astype(dtype)


@pytest.mark.parametrize("spill_bytes", [0, 10**9], ids=["on disk", "in memory"])
def test_the_kept_values_come_back_bit_for_bit(tmp_path, spill_bytes):
    original = _array()
    kept = KeptArray(original, spill_bytes=spill_bytes, directory=str(tmp_path))
    assert kept.on_disk == (spill_bytes == 0) and len(os.listdir(tmp_path)) == int(spill_bytes == 0)
    changed = original.copy()
    changed += 1
    kept.restore_into(changed)
    np.testing.assert_array_equal(changed, original)
    kept.discard()
    assert os.listdir(tmp_path) == []


def test_a_non_contiguous_target_and_a_wrong_shape(tmp_path):
    original = _array()
    kept = KeptArray(original, spill_bytes=0, directory=str(tmp_path))
    target = np.zeros((7, 300), np.float32).T  # Fortran order: read through a temporary
    kept.restore_into(target)
    np.testing.assert_array_equal(target, original)
    with pytest.raises(ValueError, match=r"shape \(300, 7\) into one of shape \(7, 300\)"):
        kept.restore_into(np.zeros((7, 300), np.float32))


def test_a_copy_that_cannot_be_written_stays_in_memory_and_says_so(tmp_path, caplog):
    original = _array()
    with caplog.at_level(logging.WARNING, logger="distlda.io.spill"):
        kept = KeptArray(original, spill_bytes=0, directory=str(tmp_path / "missing"))
    assert not kept.on_disk and "keeping it in memory" in caplog.text
    target = np.zeros_like(original)
    kept.restore_into(target)
    np.testing.assert_array_equal(target, original)


def test_a_truncated_file_is_an_error_not_a_wrong_model(tmp_path):
    kept = KeptArray(_array(), spill_bytes=0, directory=str(tmp_path))
    (path,) = tmp_path.iterdir()
    os.truncate(path, path.stat().st_size - 4)
    with pytest.raises(OSError, match="truncated"):
        kept.restore_into(np.zeros((300, 7), np.float32))
    kept.discard()
    assert not path.exists()
