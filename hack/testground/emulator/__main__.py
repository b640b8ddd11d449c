"""Run the emulator as a program: `python -m testground.emulator --help`."""

import sys

from testground.emulator.cli import main

sys.exit(main())
