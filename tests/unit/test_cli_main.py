"""The `dialer` command line: every command registers, and only the one run is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dialer.cli.main import COMMANDS, build_parser, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    assert exited.value.code == 0
    assert f"usage: dialer {name}" in capsys.readouterr().out


def test_the_full_parser_loads_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in COMMANDS)


def test_top_level_help_imports_no_command_module() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from dialer.cli.main import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('dialer.cli.') and m != 'dialer.cli.main'))\n"
        "print('sqlalchemy' in sys.modules, 'fastapi' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "False False"]


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dial-everyone"])
    assert exited.value.code == 2
    assert "invalid choice: 'dial-everyone'" in capsys.readouterr().err
