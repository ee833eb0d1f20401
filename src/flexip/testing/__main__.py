"""`python -m flexip.testing FOLDER`: write the tiny random stack as a preset folder (the shipped tiny-random)."""

import sys

from flexip.testing import save_tiny_preset

if len(sys.argv) != 2:
    sys.exit("usage: python -m flexip.testing FOLDER")
print(save_tiny_preset(sys.argv[1]))
