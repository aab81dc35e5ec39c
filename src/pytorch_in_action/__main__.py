"""`python -m pytorch_in_action` is the `pia` command (so `torchrun -m pytorch_in_action ...` works)."""

import sys

from pytorch_in_action.cli import main

if __name__ == "__main__":
    sys.exit(main())
