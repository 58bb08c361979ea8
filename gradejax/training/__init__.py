"""Stage 3, train: augmentation, the input pipeline (cached features), the training loop."""
