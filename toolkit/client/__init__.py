"""Talking to a served model: the Predictor (sync and asyncio), image decoding, predictions."""
