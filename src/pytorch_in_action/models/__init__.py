"""Whole networks, one architecture per file, each able to load its Hugging Face / torchvision twin's weights."""
