"""The pure-PyTorch engine: specs, model builder, datasets, training, checkpoints. No Qt here."""
