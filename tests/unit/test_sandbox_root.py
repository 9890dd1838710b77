from pathlib import Path

import pytest

from dialer.sandbox import root as root_module
from dialer.sandbox.errors import SandboxStartError, SandboxUnavailable
from dialer.sandbox.root import default_root_path, ensure_host_tools, ensure_root, modules_dir, require_root_user


def _fake_root(path: Path) -> None:
    (path / "usr/sbin").mkdir(parents=True)
    (path / "usr/sbin/asterisk").write_text("")
    mods = path / "usr/lib/x86_64-linux-gnu/asterisk/modules"
    mods.mkdir(parents=True)
    (mods / "app_queue.so").write_text("")


def test_root_path_from_env_then_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DIALER_SANDBOX_ROOT", str(tmp_path / "r"))
    assert default_root_path() == tmp_path / "r"
    monkeypatch.delenv("DIALER_SANDBOX_ROOT")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root_path() == tmp_path / "cache/dialer/asterisk-root"


def test_not_root_is_told_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(root_module.os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxUnavailable, match="needs root"):
        require_root_user()
    monkeypatch.setattr(root_module.shutil, "which", lambda cmd: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install -y --no-install-recommends mmdebstrap sip-tester"):
        ensure_host_tools()


def test_a_complete_root_is_reused_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_root(tmp_path / "root")

    def no_build(target: Path, progress: object) -> None:
        raise AssertionError("must not build")

    monkeypatch.setattr(root_module, "_mmdebstrap", no_build)
    assert ensure_root(tmp_path / "root") == tmp_path / "root"
    assert modules_dir(tmp_path / "root") == "/usr/lib/x86_64-linux-gnu/asterisk/modules"


def test_an_interrupted_build_leaves_no_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(root_module, "ensure_host_tools", lambda progress: None)
    monkeypatch.setattr(root_module.os, "geteuid", lambda: 0)

    def half_build(target: Path, progress: object) -> None:
        (target / "usr/sbin").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(root_module, "_mmdebstrap", half_build)
    with pytest.raises(KeyboardInterrupt):
        ensure_root(tmp_path / "root")
    assert not (tmp_path / "root").exists()

    built: list[Path] = []

    def full_build(target: Path, progress: object) -> None:
        built.append(target)
        _fake_root(target)

    monkeypatch.setattr(root_module, "_mmdebstrap", full_build)
    assert ensure_root(tmp_path / "root") == tmp_path / "root"
    assert built[0] != tmp_path / "root"  # built aside, then renamed into place
    assert modules_dir(tmp_path / "root") is not None
    assert not list(tmp_path.glob(".root.building-*"))


def test_a_build_without_asterisk_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(root_module, "ensure_host_tools", lambda progress: None)
    monkeypatch.setattr(root_module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(root_module, "_mmdebstrap", lambda target, progress: target.mkdir())
    with pytest.raises(SandboxStartError, match="has no Asterisk"):
        ensure_root(tmp_path / "root")
    assert not (tmp_path / "root").exists()
