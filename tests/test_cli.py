import subprocess
import sys

import pytest

from tempovl.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_console_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "tempovl.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "corpus" in proc.stdout


def test_overrides_may_follow_options(tmp_path):
    """`tempovl train CFG --out DIR key=value` takes the override given after the option."""
    out = tmp_path / "run"
    rc = main(["train", "task/toy", "--out", str(out), "train.max_steps=2", "train.progress=false"])
    assert rc == 0
    assert (out / "latest").read_text().strip() == "ckpt-0000002"
    try:
        main(["train", "task/toy", "--out", str(out), "--bogus"])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("an unknown option must be refused")


def test_help_of_every_command_loads_no_heavy_library():
    """`tempovl COMMAND --help` answers at once: torch, PyAV, faiss and transformers are imported
    only by the commands that run (issue 16: start-up in < 1 s)."""
    code = (
        "import sys\nfrom tempovl.cli import COMMANDS, main\nbad = {}\n"
        "for name in COMMANDS:\n"
        "    try:\n        main([name, '--help'])\n    except SystemExit:\n        pass\n"
        "    heavy = [m for m in ('torch', 'av', 'faiss', 'transformers') if m in sys.modules]\n"
        "    if heavy:\n        bad[name] = heavy\n        break\n"
        "print('HEAVY', bad, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY {}" in proc.stderr, proc.stderr[-500:]
