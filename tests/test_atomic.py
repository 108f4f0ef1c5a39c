import os
import stat

import pytest

from worldsim.atomic import atomic_write, temp_glob


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores the old one after it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_permissions_of_a_plain_open(tmp_path, umask, mask, expected):
    umask(mask)
    with atomic_write(tmp_path / "model.json", "w") as f:
        f.write("{}")
    with open(tmp_path / "plain.json", "w") as f:
        f.write("{}")
    mode = stat.S_IMODE((tmp_path / "model.json").stat().st_mode)
    assert mode == expected == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode)


def test_a_clean_exit_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "e.npz"
    path.write_bytes(b"old")
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["e.npz"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    path = tmp_path / "e.npz"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write(b"half")
        assert list(tmp_path.glob(temp_glob("e.npz")))  # the temporary is where resumers sweep
        raise RuntimeError
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["e.npz"]


def test_an_atomic_folder_replaces_the_old_one_only_when_complete(tmp_path):
    from worldsim.atomic import atomic_folder

    target = tmp_path / "model"
    with atomic_folder(target) as fresh:
        (fresh / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError), atomic_folder(target) as fresh:
        (fresh / "a.txt").write_text("two")
        raise RuntimeError("killed half way")
    assert (target / "a.txt").read_text() == "one" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    (tmp_path / ".model.tmp").mkdir()  # left by a kill: the next write sweeps it
    with atomic_folder(target) as fresh:
        (fresh / "b.txt").write_text("three")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
