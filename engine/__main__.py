"""``python -m pointscore``: the ``pointscore`` command."""
import sys

from .cli import main

sys.exit(main())
