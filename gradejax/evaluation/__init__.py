"""Stage 4, evaluate: metrics, the cross-validation/permutation/bootstrap engine, the verdict."""
