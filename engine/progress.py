"""A one-line progress bar for long runs: done/total images, images/s and points/s.

It draws on stderr only when stderr is a terminal, so logs and pipes stay clean.
"""
import sys
import time

REDRAW_SECONDS = 0.2


class Progress:
    def __init__(self, total_images, total_points, stream=None, enabled=None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total_images = total_images
        self.total_points = total_points
        self.images = 0
        self.points = 0
        self.start = time.perf_counter()
        self.drawn = 0.0

    def update(self, images, points):
        self.images += images
        self.points += points
        now = time.perf_counter()
        if self.enabled and (now - self.drawn >= REDRAW_SECONDS or self.images >= self.total_images):
            self.drawn = now
            self.stream.write("\r" + self.line(now - self.start))
            self.stream.flush()

    def line(self, elapsed):
        fraction = self.images / self.total_images if self.total_images else 1.0
        bar = "#" * int(30 * fraction)
        rate = max(elapsed, 1e-9)
        return (f"[{bar:<30}] {self.images}/{self.total_images} images  "
                f"{self.images / rate:,.0f} images/s  {self.points / rate:,.0f} points/s")

    def close(self):
        if self.enabled and self.drawn:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
