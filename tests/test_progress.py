import io

from pointscore.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_only_on_a_terminal():
    quiet = io.StringIO()
    with Progress(10, 100, stream=quiet) as progress:
        progress.update(10, 100)
    assert quiet.getvalue() == ""

    terminal = FakeTerminal()
    with Progress(10, 100, stream=terminal) as progress:
        progress.update(4, 40)
        progress.update(6, 60)
    text = terminal.getvalue()
    assert "10/10 images" in text and "points/s" in text and text.endswith("\n")
