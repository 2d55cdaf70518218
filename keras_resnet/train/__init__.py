"""Layer 5, train: the training loop with RunState's commit point, distribution strategies, callbacks and evaluation."""
