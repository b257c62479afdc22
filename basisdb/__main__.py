"""``python -m basisdb``: the ``basisdb`` command (:mod:`basisdb.commands`)."""

import sys

from .commands import main

if __name__ == "__main__":
    sys.exit(main())
