"""pytorch_in_action: deep-learning pieces written from scratch in PyTorch and proven equal to the real ones."""

__version__ = "0.1.0"
