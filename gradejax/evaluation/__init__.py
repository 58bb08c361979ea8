"""Stage 4, evaluate: the cross-validation/permutation/bootstrap engine, the verdict (the metrics
are the leaf :mod:`gradejax.stats`, shared with the trainer)."""
