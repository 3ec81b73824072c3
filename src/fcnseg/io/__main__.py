"""``python -m fcnseg.io SRC --model NAME --num-classes K -o DST``: the convert command alone."""

import sys

from fcnseg.io.command import convert_main

sys.exit(convert_main())
