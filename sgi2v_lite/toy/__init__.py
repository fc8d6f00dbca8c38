"""The toy world: a procedural video generator (`world`), the trainer of a tiny SVD-architecture
pipeline on it (`train`), the generated part of its card (`card`: TRAINING.md from the training log),
and the evaluation of SG-I2V on it (`evaluate`)."""
