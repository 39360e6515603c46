"""pipeline.io: every file written beside its place and renamed in; PNG bytes that are reproducible."""

import os
import stat
import subprocess
import sys

import cv2
import numpy as np
import pytest

from pipeline.io import png_bytes, write_atomic


def test_bytes_replace_the_file_whole_with_the_umask_permissions(tmp_path):
    path = tmp_path / "deep" / "config.yaml"
    assert write_atomic(path, b"first\n") == path
    write_atomic(path, b"second\n")
    assert path.read_bytes() == b"second\n"
    assert os.listdir(path.parent) == ["config.yaml"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_writer_function_gets_a_temporary_path_with_the_same_suffix(tmp_path):
    seen = []

    def save(p):
        seen.append(p)
        np.save(p, np.arange(3))  # np.save appends .npy unless the path ends with it

    path = write_atomic(tmp_path / "labels.npy", save)
    assert seen[0].suffix == ".npy" and seen[0].parent == tmp_path and seen[0] != path
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert os.listdir(tmp_path) == ["labels.npy"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"old")

    def broken(p):
        p.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, broken)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.keras"]


def test_a_missing_folder_fails_when_told_not_to_create_it(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "gone" / "x.json", b"{}", make_parent=False)
    assert not (tmp_path / "gone").exists()


def test_the_crash_point_kills_the_process_right_after_its_nth_write(tmp_path):
    script = (
        "import sys; from pipeline.io import write_atomic\n"
        "for k in range(5): write_atomic(sys.argv[1] + f'/f{k}', b'x')\n"
    )
    env = {**os.environ, "AUGPIPE_TEST_DIE_AFTER_WRITES": "3"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, timeout=60)
    assert proc.returncode == -9
    assert sorted(os.listdir(tmp_path)) == ["f0", "f1", "f2"]


def test_png_bytes_round_trip_and_are_reproducible(photo_batch_u8):
    picture = photo_batch_u8[0]
    data = png_bytes(picture)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == png_bytes(picture.copy())
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decoded, picture)
