"""`tempovl demo` end to end on the tiny corpus, then once more: a finished run is skipped, not redone."""

import json

import pytest

from tempovl.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", str(out), "--preset", "tiny", "--extractor", "random2d+motion", "--no-progress"]
    args += ["--pretrain-steps", "6", "--finetune-steps", "4", "--query", "someone jumps"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "6 steps ->" in first and "4 steps ->" in first and "top hits for 'someone jumps'" in first
    assert "test video retrieval R@1:" in first and "a random ranking: 50.0 %" in first
    assert "== 4. HERO pre-training (VSM)" in first  # the default --pretrain-tasks
    metrics = json.loads((out / "hero-vcmr" / "eval-test" / "metrics.json").read_text())
    assert metrics["split"] == "test" and "VCMR_0.5-r1" in metrics["metrics"]
    assert (out / "hero-vcmr" / "eval-test" / "moments.png").is_file()
    assert (out / "index" / "manifest.json").is_file()
    scratch = json.loads((out / "hero-vcmr-scratch" / "eval-test" / "metrics.json").read_text())
    assert scratch["split"] == "test" and "VR_r1" in scratch["metrics"]
    assert "pre-trained: test video retrieval R@1:" in first and "scratch: test video retrieval R@1:" in first
    assert "search uses hero-vcmr" in first

    assert main(args) == 0
    again = capsys.readouterr().out
    assert "corpus already at" in again and again.count("already trained") == 3


def test_choose_run_takes_the_best_val_vr_r1_and_tolerates_a_run_without_evaluations(tmp_path):
    from tempovl.demo import choose_run

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for run, rows in ((a, [{"VR_r1": 20.0}, {"VR_r1": 31.0}]), (b, [{"VR_r1": 33.0}, {"VR_r1": 25.0}])):
        run.mkdir()
        (run / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    c.mkdir()
    assert choose_run(a, b) == b and choose_run(c, a) == a and choose_run(a, c) == a


def test_unknown_pretraining_task_is_refused_before_any_work(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "d"), "--pretrain-tasks", "vsm,itm", "--no-progress"]) == 2
    assert "--pretrain-tasks: 'vsm,itm'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
