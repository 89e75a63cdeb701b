"""Emotion Omni: the ML library behind the platform.

One subpackage per lifecycle stage (synthesis, audio, model, training, evaluation, registry, export,
inference). Pure functions and typed configs only: nothing here imports kfp or Triton, and nothing
runs at import time. `pipelines/` and `serving/` import this package, never the other way round.
"""
