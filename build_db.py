#!/usr/bin/env python
"""Build the verified basis store: ``python build_db.py --radii 2 4 6 --out PATH``.

The same command as ``basisdb build``, for a checkout where the package is not installed.
"""

import sys

from basisdb.commands import build_main

if __name__ == "__main__":
    sys.exit(build_main())
