"""Evaluation: metrics for any ``predict(numpy batch) -> logits`` callable, and their analysis."""

from trainers.evaluation.evaluator import EvaluationResult, Evaluator, create_evaluator

__all__ = ["EvaluationResult", "Evaluator", "create_evaluator"]
