"""``python -m fcnseg``: the ``fcnseg`` command, for environments without its script."""

import sys

from fcnseg.cli import main

sys.exit(main())
