import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from dialer.cli import validate

REPO = Path(__file__).resolve().parents[2]

GOOD = "name: {name}\ntype: survey\ntrunk: PJSIP/{{number}}@carrier\ncaller_id: '1'\nqueue: sales\n"


def run_validate(*paths: Path) -> int:
    """Through `register` alone, as `dialer.cli.main` wires every command."""
    parser = argparse.ArgumentParser(prog="dialer")
    validate.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["validate", *map(str, paths)])
    return int(args.func(args))


def test_good_files_print_ok_and_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.format(name="a"))
    (tmp_path / "b.yaml").write_text(GOOD.format(name="b"))
    assert run_validate(tmp_path, REPO / "config" / "dialer.yaml") == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("ok: 3 files\n", "")


def test_each_problem_is_one_stderr_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.format(name="bad") + "dialing:\n  ring_timeout: 2\n  bogus: 1\n")
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: a\nname: b\n")
    assert run_validate(bad, dup, tmp_path / "missing.yaml") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{tmp_path / 'missing.yaml'}: no such file or directory",
        f"{bad}:7: dialing.ring_timeout: under 15 s; rules for automated calling want at least 15 s "
        "(allow_short_ring: true allows it in a test lab) (got 2)",
        f"{bad}:8: dialing.bogus: Extra inputs are not permitted",
        f"{dup}:2: duplicate key 'name': already given on line 1",
    ]


def test_at_least_one_path_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        run_validate()
    assert caught.value.code == 2
    assert "PATH" in capsys.readouterr().err


def test_dialer_main_dispatches_to_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli.main import main

    (tmp_path / "a.yaml").write_text(GOOD.format(name="a"))
    assert main(["validate", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "ok: 1 files\n"
    (tmp_path / "b.yaml").write_text("name: [\n")
    assert main(["validate", str(tmp_path)]) == 1


def test_python_dash_m_dialer_validate(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text(GOOD.format(name="c").replace("survey", "poll"))
    done = subprocess.run(
        [sys.executable, "-m", "dialer", "validate", str(bad)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"{bad}:2: type: Input should be 'telemarketing', 'survey' or 'callback' (got 'poll')\n"
