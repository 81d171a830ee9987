"""Atomic writes: wherever a write stops, each target holds its whole old file or its whole new one.

The exporter, the checkpoints, the tune cache and the metrics all write through `atomic_paths`; a
real SIGKILL of a whole export is in test_export.py."""

from __future__ import annotations

import os
import stat

import pytest

from fable.atomic import atomic_path, atomic_paths, output_folder, write_text
from fable.errors import UsageError


class Stop(BaseException):
    """What a crash looks like from inside: nothing after it runs but the `finally` blocks."""


def visible(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


@pytest.mark.parametrize("stop_at_rename", [1, 2, 3])
def test_a_stop_between_renames_leaves_each_target_old_or_new_in_the_order_given(tmp_path, monkeypatch, stop_at_rename):
    targets = [tmp_path / name for name in ("a.onnx", "b.onnx", "report.json")]
    for target in targets:
        target.write_bytes(b"old " + target.name.encode())
    renames, real_replace = [], os.replace

    def replace(source, target):
        renames.append(os.path.basename(target))
        if len(renames) == stop_at_rename:
            raise Stop
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Stop), atomic_paths(*targets) as temporary:
        for path in temporary:
            path.write_bytes(b"new " + path.name.encode())
    files = visible(tmp_path)
    done = stop_at_rename - 1  # renamed before the stop: new; the rest: old
    assert [files[t.name].startswith(b"new") for t in targets] == [i < done for i in range(3)]
    assert renames == [t.name for t in targets][:stop_at_rename]  # the order given: the report last
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(t.name for t in targets)  # no temporary left


def test_a_stop_while_writing_leaves_every_target_old(tmp_path):
    target = tmp_path / "fable.onnx"
    target.write_bytes(b"old")
    with pytest.raises(Stop), atomic_path(target) as temporary:
        temporary.write_bytes(b"half of the ne")
        raise Stop
    assert visible(tmp_path) == {"fable.onnx": b"old"} and len(list(tmp_path.iterdir())) == 1


def test_new_files_get_the_usual_permissions_and_the_umask_is_never_changed(tmp_path, monkeypatch):
    """Made with mode 0o666, so the umask applies as to any new file; reading the umask would
    mean setting it, which races with the other threads of an app."""
    mask = os.umask(0o022)
    try:
        monkeypatch.setattr(os, "umask", lambda *_: pytest.fail("atomic writes changed the process's umask"))
        write_text(tmp_path / "report.json", "{}")
    finally:
        monkeypatch.undo()
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644


def test_an_output_folder_made_for_a_command_that_fails_is_removed(tmp_path):
    out = tmp_path / "new" / "exported"
    with pytest.raises(RuntimeError), output_folder(out):
        assert out.is_dir()
        raise RuntimeError
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="is a file"), output_folder(tmp_path / "file"):
        pass
