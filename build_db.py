#!/usr/bin/env python
"""Build the verified basis store: ``python build_db.py --radii 2 4 6 --out PATH``."""

import sys

from basisdb.build import main

if __name__ == "__main__":
    sys.exit(main())
