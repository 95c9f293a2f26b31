"""The command's lines on stderr: one line per message, never a terminal escape."""
import sys

from ..errors import clip

# The longest line a message may take: a line quoting a hostile value (a 10 MB
# argument, a column name of a million characters) stays readable.
LINE_CHARS = 300


def say(text):
    """``text`` as one line 'pointscore: ...' on stderr: control characters escaped, at
    most LINE_CHARS long."""
    print(clip("pointscore: " + " ".join(text.splitlines()), LINE_CHARS), file=sys.stderr)
