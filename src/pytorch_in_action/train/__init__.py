"""The training engine shared by every recipe: loop, checkpoints, distributed, precision, schedules, metrics."""
