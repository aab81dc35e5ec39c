"""From-scratch building blocks, each the twin of a torch.nn piece (conv, RNN family, attention, Transformer)."""
