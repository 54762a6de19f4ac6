"""The file container: checksums of every part, the first format still read, stale temporaries cleaned."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import flip_array_byte

from distlda.io.container import (
    MAGIC_V1,
    ContainerError,
    read_container,
    remove_stale_temporaries,
    verify_container,
    write_container,
)

ARRAYS = {"a": np.arange(1000, dtype=np.float32), "b": np.ones((30, 7), dtype=np.int64), "empty": np.zeros(0)}


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "x.bin"
    write_container(path, "test.kind", {"note": "café"}, ARRAYS)
    return path


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_round_trip_and_verify(tmp_path: Path) -> None:
    path = _write(tmp_path)
    meta, arrays = read_container(path, kind="test.kind")
    assert meta == {"note": "café"}
    for name, value in ARRAYS.items():
        np.testing.assert_array_equal(arrays[name], value)
    assert verify_container(path)["kind"] == "test.kind"


@pytest.mark.parametrize("name", ["a", "b"])
@pytest.mark.parametrize("mmap", [None, "r"])
def test_a_flipped_bit_in_an_array_is_named(tmp_path: Path, name: str, mmap: str | None) -> None:
    path = _write(tmp_path)
    flip_array_byte(path, name, byte=5, mask=0x10)
    with pytest.raises(ContainerError, match=rf"{path}.*checksum of array '{name}'"):
        read_container(path, mmap=mmap, verify=True)
    with pytest.raises(ContainerError, match=f"array '{name}'"):
        verify_container(path)


def test_a_mapped_array_is_checked_only_when_asked(tmp_path: Path) -> None:
    path = _write(tmp_path)
    flip_array_byte(path, "a", mask=0x10)
    _, arrays = read_container(path, mmap="r")  # mapping reads nothing: the check is verify=True's
    assert arrays["a"].shape == (1000,)
    with pytest.raises(ContainerError):
        read_container(path)  # read into memory: always checked


@pytest.mark.parametrize("where", [21, 40, 60])
def test_a_flipped_bit_in_the_header_is_named(tmp_path: Path, where: int) -> None:
    path = _write(tmp_path)
    _flip(path, where)
    with pytest.raises(ContainerError, match=f"{path}.*(header|checksum)"):
        read_container(path, mmap="r")


def test_an_edited_header_with_a_fixed_length_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path)
    raw = path.read_bytes()
    edited = raw.replace(b'"shape": [30, 7]', b'"shape": [70, 3]')
    assert edited != raw
    path.write_bytes(edited)
    with pytest.raises(ContainerError, match="checksum of its header"):
        read_container(path)


def test_truncated_file(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ContainerError, match="truncated"):
        read_container(path)


def test_files_of_the_first_format_still_load(tmp_path: Path) -> None:
    # the first format: magic, header length, header, padding, arrays; no checksums
    a = np.arange(10, dtype=np.float64)
    header = json.dumps({"kind": "k", "meta": {"v": 1},
                         "arrays": {"a": {"dtype": a.dtype.str, "shape": [10], "offset": 0}}}).encode()
    start = 16 + len(header)
    path = tmp_path / "old.bin"
    path.write_bytes(MAGIC_V1 + len(header).to_bytes(8, "little") + header + b"\0" * ((-start) % 64) + a.tobytes())
    meta, arrays = read_container(path, kind="k")
    assert meta == {"v": 1}
    np.testing.assert_array_equal(arrays["a"], a)


def test_the_checksum_is_crc32_of_the_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path)
    raw = path.read_bytes()
    hlen = int.from_bytes(raw[8:16], "little")
    assert int.from_bytes(raw[16:20], "little") == zlib.crc32(raw[20:20 + hlen])
    header = json.loads(raw[20:20 + hlen])
    assert header["arrays"]["a"]["crc32"] == zlib.crc32(ARRAYS["a"].tobytes())


def _temporary(path: Path, pid: int) -> Path:
    tmp = path.parent / f".{path.name}.{socket.gethostname()}.{pid}.abc123.tmp"
    tmp.write_bytes(b"half a file")
    return tmp


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_killed_writers_go_at_the_next_write_and_load(tmp_path: Path) -> None:
    path = _write(tmp_path)
    stale = _temporary(path, _dead_pid())
    live = _temporary(path, os.getpid())  # a write in progress in a live process: left alone
    other = tmp_path / f".other.bin.{socket.gethostname()}.{_dead_pid()}.x.tmp"  # another file's
    other.write_bytes(b"")
    read_container(path)
    assert not stale.exists() and live.exists() and other.exists()
    stale = _temporary(path, _dead_pid())
    write_container(path, "test.kind", {}, ARRAYS)
    assert not stale.exists() and live.exists()
    assert remove_stale_temporaries(path) == []


def test_a_writer_killed_mid_write_leaves_nothing_after_the_next_save(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    script = ("import sys, numpy as np\n"
              "from distlda.io.container import write_container\n"
              "import distlda.io.container as c\n"
              "real = c.atomic_write\n"
              "def stuck(path, writer):\n"
              "    def half(fh):\n"
              "        fh.write(b'x' * 1000); fh.flush(); print('writing', flush=True); sys.stdin.read()\n"
              "    real(path, half)\n"
              "c.atomic_write = stuck\n"
              f"write_container({str(path)!r}, 'k', {{}}, {{'a': np.zeros(10)}})\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"writing"
        assert len(list(tmp_path.glob(".big.bin.*.tmp"))) == 1
    finally:
        proc.kill()
        proc.wait()
    write_container(path, "k", {}, {"a": np.zeros(10)})
    assert list(tmp_path.glob(".big.bin.*.tmp")) == []
