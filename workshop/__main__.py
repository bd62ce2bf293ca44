"""`python -m workshop <command>`: every learner and instructor command, on any system.

The Makefile's targets are one-line aliases of these (`make step 4` runs `python -m
workshop step 4`); on Windows, without make, type `py -m workshop step 4`.
"""

import sys

from workshop.cli import main

if __name__ == "__main__":
    sys.exit(main())
