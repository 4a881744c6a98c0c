"""``python -m diagsim``: the ``diagsim`` command (importing this module runs nothing)."""
import sys

from .cli.main import console_main

if __name__ == "__main__":
    sys.exit(console_main())
