"""The toy world: a procedural video generator (`world`), the trainer of a tiny SVD-architecture
pipeline on it (`train`), and the evaluation of SG-I2V on it (`evaluate`)."""
