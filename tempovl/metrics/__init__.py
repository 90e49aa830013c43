"""Evaluation metrics: clip retrieval, moment retrieval (tIoU, NMS, TVR and DiDeMo evaluation), QA and
captioning. Recall and accuracy values are percentages; caption scores are coco-caption fractions."""

from tempovl.metrics.caption import CAPTION_METRICS, caption_scores
from tempovl.metrics.didemo import DIDEMO_MOMENTS, didemo_eval, didemo_iou, rank_didemo_moments
from tempovl.metrics.moment import eval_tvr, nms_moments, temporal_iou, temporal_nms, tvr_table
from tempovl.metrics.qa import exact_match_accuracy, normalize_answer, qa_accuracy
from tempovl.metrics.retrieval import chance_recall, ranks_from_scores, recall_metrics, retrieval_metrics

__all__ = [
    "CAPTION_METRICS",
    "DIDEMO_MOMENTS",
    "caption_scores",
    "chance_recall",
    "didemo_eval",
    "didemo_iou",
    "eval_tvr",
    "exact_match_accuracy",
    "nms_moments",
    "normalize_answer",
    "qa_accuracy",
    "rank_didemo_moments",
    "ranks_from_scores",
    "recall_metrics",
    "retrieval_metrics",
    "temporal_iou",
    "temporal_nms",
    "tvr_table",
]
