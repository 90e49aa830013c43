"""The TVR standalone evaluation on a hand-made ground truth and submission; every number by hand.

Videos vA=0, vB=1, vC=2. Queries (type): q1 vA [10, 20] (v), q2 vB [0, 10] (t), q3 vC [30, 40] (vt),
q4 vA [50, 60] (v). Comments give each prediction's video and tIoU with the ground truth.
"""

import copy
import math

import pytest

from tempovl.errors import InputError
from tempovl.metrics import eval_tvr, tvr_table

VIDEO2IDX = {"vA": 0, "vB": 1, "vC": 2}
GT = [
    {"desc_id": 1, "desc": "q1", "vid_name": "vA", "ts": [10, 20], "type": "v", "duration": 90},
    {"desc_id": 2, "desc": "q2", "vid_name": "vB", "ts": [0, 10], "type": "t", "duration": 60},
    {"desc_id": 3, "desc": "q3", "vid_name": "vC", "ts": [30, 40], "type": "vt", "duration": 60},
    {"desc_id": 4, "desc": "q4", "vid_name": "vA", "ts": [50, 60], "type": "v", "duration": 90},
]
VR = [
    {"desc_id": 1, "predictions": [[0, 0, 0, 9.0]]},  # right video 1st
    {"desc_id": 2, "predictions": [[2, 0, 0, 9.0], [1, 0, 0, 8.0]]},  # right video 2nd of only 2
    {"desc_id": 3, "predictions": []},  # empty list: no hit
    # right video 101st: only the first 100 predictions are read
    {"desc_id": 4, "predictions": [[1, 0, 0, 1.0]] * 100 + [[0, 0, 0, 0.5]]},
]
VCMR = [
    {"desc_id": 1, "predictions": [[1, 10, 20, 5.0], [0, 12, 20, 4.0]]},  # wrong video; vA tIoU 0.8
    {"desc_id": 2, "predictions": [[1, 0, 6, 5.0], [1, 2, 10, 4.0]]},  # tIoU 0.6; tIoU 0.8
    {"desc_id": 3, "predictions": [[2, 35, 45, 5.0], [2, 30, 37, 4.0]]},  # tIoU 1/3; tIoU exactly 0.7
    {"desc_id": 4, "predictions": []},
]
SVMR = [
    {"desc_id": 1, "predictions": [[1, 10, 20, 5.0], [0, 11, 20, 4.0]]},  # other video skipped; tIoU 0.9
    {"desc_id": 2, "predictions": [[1, 0, 6, 5.0], [1, 0, 9, 4.0]]},  # tIoU 0.6; tIoU 0.9
    {"desc_id": 3, "predictions": [[2, 0, 5, 5.0]]},  # tIoU 0
    {"desc_id": 4, "predictions": [[0, 50, 60, 5.0]]},  # tIoU 1
]
SUBMISSION = {"video2idx": VIDEO2IDX, "VCMR": VCMR, "SVMR": SVMR, "VR": VR}


def _expected_by_type(names, v, t, vt):
    out = {}
    for desc_type, row in (("v", v), ("t", t), ("vt", vt)):
        out.update({f"{desc_type}-{n}": x for n, x in zip(names, row)})
    out["desc_type_ratio"] = "v 50.0 t 25.0 vt 25.0"
    return out


MOMENT_KEYS = [f"{thd}-r{k}" for thd in (0.5, 0.7) for k in (1, 5, 10, 100)]
VR_KEYS = ["r1", "r5", "r10", "r100"]


def test_eval_tvr_hand_computed():
    m = eval_tvr(copy.deepcopy(SUBMISSION), GT)
    assert list(m) == ["VCMR", "SVMR", "VR", "VCMR_by_type", "SVMR_by_type", "VR_by_type"]
    assert m["VR"] == {"r1": 25.0, "r5": 50.0, "r10": 50.0, "r100": 50.0}
    assert m["VR_by_type"] == _expected_by_type(VR_KEYS, [50.0] * 4, [0.0, 100.0, 100.0, 100.0], [0.0] * 4)
    assert m["VCMR"] == dict(zip(MOMENT_KEYS, [25.0, 75.0, 75.0, 75.0, 0.0, 75.0, 75.0, 75.0]))
    assert m["VCMR_by_type"] == _expected_by_type(
        MOMENT_KEYS,
        [0.0, 50.0, 50.0, 50.0, 0.0, 50.0, 50.0, 50.0],
        [100.0, 100.0, 100.0, 100.0, 0.0, 100.0, 100.0, 100.0],
        [0.0, 100.0, 100.0, 100.0, 0.0, 100.0, 100.0, 100.0],
    )
    assert m["SVMR"] == dict(zip(MOMENT_KEYS, [75.0, 75.0, 75.0, 75.0, 50.0, 75.0, 75.0, 75.0]))
    assert m["SVMR_by_type"] == _expected_by_type(
        MOMENT_KEYS,
        [100.0] * 8,
        [100.0, 100.0, 100.0, 100.0, 0.0, 100.0, 100.0, 100.0],
        [0.0] * 8,
    )


def test_tasks_are_optional_and_topks_configurable():
    m = eval_tvr({"video2idx": VIDEO2IDX, "VR": VR}, GT, topks=(1, 2))
    assert list(m) == ["VR", "VR_by_type"] and m["VR"] == {"r1": 25.0, "r2": 50.0}


def test_rounding_to_two_decimals_and_empty_type_is_nan():
    gt = [dict(GT[0], desc_id=i) for i in range(3)]  # three type-v queries
    preds = [
        {"desc_id": i, "predictions": [[0, 0, 0, 1.0]] if i == 0 else [[1, 0, 0, 1.0]]} for i in range(3)
    ]
    m = eval_tvr({"video2idx": VIDEO2IDX, "VR": preds}, gt)
    assert m["VR"]["r1"] == 33.33
    assert m["VR_by_type"]["v-r1"] == 33.33 and math.isnan(m["VR_by_type"]["t-r1"])
    assert m["VR_by_type"]["desc_type_ratio"] == "v 100.0 t 0.0 vt 0.0"
    preds[1]["predictions"] = [[0, 0, 0, 1.0]]
    assert eval_tvr({"video2idx": VIDEO2IDX, "VR": preds}, gt)["VR"]["r1"] == 66.67


def test_no_type_breakdown_without_types():
    gt = [{k: v for k, v in g.items() if k != "type"} for g in GT]
    m = eval_tvr({"video2idx": VIDEO2IDX, "VR": VR}, gt)
    assert list(m) == ["VR"]


def test_duplicate_desc_id_last_entry_wins():
    vr = copy.deepcopy(VR) + [{"desc_id": 1, "predictions": [[2, 0, 0, 1.0]]}]  # q1 now wrong
    assert eval_tvr({"video2idx": VIDEO2IDX, "VR": vr}, GT)["VR"]["r1"] == 0.0


def test_didemo_style_ground_truth_needs_two_annotators():
    gt = [{"desc_id": 7, "vid_name": "vA", "ts": [[0, 5], [0, 5], [10, 15], [20, 25]], "type": "v"}]
    hit = {"video2idx": VIDEO2IDX, "VCMR": [{"desc_id": 7, "predictions": [[0, 0, 5, 1.0]]}]}
    miss = {"video2idx": VIDEO2IDX, "VCMR": [{"desc_id": 7, "predictions": [[0, 10, 15, 1.0]]}]}
    assert eval_tvr(hit, gt)["VCMR"]["0.7-r1"] == 100.0
    assert eval_tvr(miss, gt)["VCMR"]["0.7-r1"] == 0.0


def test_missing_queries_error_or_partial():
    sub = {"video2idx": VIDEO2IDX, "VR": copy.deepcopy(VR[:3])}
    with pytest.raises(
        InputError, match=r"submission\['VR'\]: 1 ground-truth queries have no predictions \(desc_id 4\)"
    ):
        eval_tvr(sub, GT)
    m = eval_tvr(sub, GT, allow_partial=True)
    assert m["VR"]["r1"] == 33.33  # q1 of q1..q3
    assert m["VR_by_type"]["desc_type_ratio"] == "v 33.33 t 33.33 vt 33.33"


def test_unknown_videos_and_desc_ids():
    sub = {"video2idx": VIDEO2IDX, "VR": copy.deepcopy(VR)}
    sub["VR"][0]["predictions"].append([7, 0, 0, 0.1])
    with pytest.raises(InputError, match=r"video indices not in video2idx \(7\)"):
        eval_tvr(sub, GT)
    assert eval_tvr(sub, GT, allow_partial=True)["VR"]["r1"] == 25.0
    sub = {"video2idx": VIDEO2IDX, "VR": copy.deepcopy(VR) + [{"desc_id": 99, "predictions": []}]}
    with pytest.raises(InputError, match=r"predicted desc_ids are not in the ground truth \(99\)"):
        eval_tvr(sub, GT)
    with pytest.raises(InputError, match="video2idx'\\] lacks ground-truth videos: vA"):
        eval_tvr({"video2idx": {"vB": 1, "vC": 2}, "VR": VR}, GT)


@pytest.mark.parametrize(
    "submission, gt, match",
    [
        ({"VR": VR}, GT, "video2idx"),
        ({"video2idx": VIDEO2IDX}, GT, "none of"),
        ({"video2idx": {"vA": "0"}, "VR": VR}, GT, "indices must be integers"),
        (
            {"video2idx": VIDEO2IDX, "VR": [{"desc_id": 1, "predictions": [[0, "a", 1]]}]},
            GT[:1],
            "prediction 0",
        ),
        ({"video2idx": VIDEO2IDX, "VR": [{"predictions": []}]}, GT[:1], r"\['VR'\]\[0\]"),
        ({"video2idx": VIDEO2IDX, "VR": VR}, [dict(GT[0], ts=[1, 2, 3])], "ground truth record 0"),
        ({"video2idx": VIDEO2IDX, "VR": VR}, [dict(GT[0], type="x")], "type 'x'"),
        ({"video2idx": VIDEO2IDX, "VR": VR}, [{"desc_id": 1, "ts": [0, 1]}], "missing key 'vid_name'"),
    ],
)
def test_bad_input_errors(submission, gt, match):
    with pytest.raises(InputError, match=match):
        eval_tvr(submission, gt)


def test_tvr_table_lists_tasks_and_types():
    table = tvr_table(eval_tvr(copy.deepcopy(SUBMISSION), GT))
    assert "| VCMR | 0.5-r1 |" in table and "| vt |" in table and "v 50.0 t 25.0 vt 25.0" in table
