import subprocess
import sys

from tempovl.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_console_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "tempovl.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "corpus" in proc.stdout
