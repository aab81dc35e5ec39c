"""One exception type for bad user input: the CLI turns it into one line and a non-zero exit."""


class PiaError(Exception):
    """A problem with the user's input (paths, data, config, checkpoints). The message is one line."""
