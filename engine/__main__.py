"""``python -m pointscore``: the ``pointscore`` command."""
import sys

from .cli import main

if __name__ == "__main__":  # not when multiprocessing imports it in a child
    sys.exit(main())
