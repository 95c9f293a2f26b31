"""Drawing one image's points for the overlays: its photo (or a blank canvas) as a
bounded thumbnail, the markers over it, and the thumbnail as an inline JPEG.

Markers are Okabe & Ito's colour-blind-safe colours, one shape each, with a dark
outline, scaled with the thumbnail. A photo is decoded only in the usual photo formats
and within Pillow's decompression-bomb limit; a file that cannot be decoded is not an
error (the caller draws a blank canvas and says why).
"""
from __future__ import annotations

import base64
import html
import io
import os
import stat
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import first_line
from .overlay_matches import Drawn

MAX_SIDE = 640             # a thumbnail's longer side, at most
MIN_SIDE = 320             # and at least: small images and canvases are enlarged
JPEG_QUALITY = 80
BLANK = (68, 68, 68)       # the canvas of an image drawn without its file
OUTLINE = (0, 0, 0)
BOMB_PIXELS = 89_478_485   # Pillow's default limit, where Image.MAX_IMAGE_PIXELS is None
# The photo formats decoded; no other Pillow plugin (EPS would run Ghostscript) is tried.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")


@dataclass(frozen=True)
class Marker:
    """How one kind of point is drawn: its legend text, shape and colour."""
    label: str
    shape: str             # circle, plus, square or cross
    rgb: tuple


# Drawn in this order (errors on top), in Okabe & Ito's colour-blind-safe colours.
MARKERS = {
    "matched_gt": Marker("ground truth, matched", "circle", (86, 180, 233)),    # sky blue
    "tp": Marker("prediction, matched (TP)", "plus", (0, 158, 115)),             # bluish green
    "missed": Marker("ground truth, missed (FN)", "square", (240, 228, 66)),     # yellow
    "fp": Marker("prediction, false positive (FP)", "cross", (213, 94, 0)),      # vermillion
}


def thumbnail_size(width: float, height: float) -> tuple[int, int]:
    """A thumbnail's size: the longer side between MIN_SIDE and MAX_SIDE (the image's own
    when within), the aspect ratio kept."""
    longer = max(width, height)
    scale = min(MAX_SIDE, max(MIN_SIDE, longer)) / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_thumbnail(path: str):
    """An image file decoded into an RGB thumbnail, within Pillow's decompression-bomb
    limit.

    Parameters
    ----------
    path : str
        The file (``image_file``).

    Returns
    -------
    tuple
        (thumbnail or None, (width, height) of the image or None, why there is no
        thumbnail or None): a missing, unreadable, oversized or undecodable file is not
        an error.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None, None, "no such file"
    except OSError as exc:
        return None, None, f"cannot read it: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return None, None, "not a regular file"
    limit = Image.MAX_IMAGE_PIXELS or BOMB_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=PHOTO_FORMATS) as image:
                width, height = image.size
                if width * height > limit:
                    return None, (width, height), (
                        f"{width}x{height} pixels, more than Pillow's decompression-bomb "
                        f"limit of {limit:,}: not decoded")
                size = thumbnail_size(width, height)
                image.draft("RGB", size)  # JPEG: decoded at a fraction of its size
                thumb = image.convert("RGB").resize(size, _bilinear(Image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return None, None, f"refused: {first_line(exc)}"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        return None, None, f"cannot decode it: {first_line(exc)}"
    except Exception as exc:  # a decoder fed a malformed file may raise anything else
        return None, None, f"cannot decode it: {type(exc).__name__}: {first_line(exc)}"
    return thumb, (width, height), None


def _bilinear(image_module):
    """Bilinear resampling: in ``Image.Resampling`` from Pillow 9.1, ``Image`` before."""
    return getattr(image_module, "Resampling", image_module).BILINEAR


def marker_radius(size: tuple[int, int]) -> int:
    """Markers' radius in thumbnail pixels: visible at every thumbnail size."""
    return max(5, round(max(size) / 90))


def draw_points(image, scale: tuple[float, float], drawn: Drawn) -> int:
    """Draw an image's points on its thumbnail (in place).

    Parameters
    ----------
    image : PIL.Image.Image
        The RGB thumbnail.
    scale : (float, float)
        Thumbnail pixels per image pixel, horizontally and vertically.
    drawn : Drawn
        The points.

    Returns
    -------
    int
        How many points fall outside the thumbnail (not drawn).
    """
    from PIL import ImageDraw
    draw = ImageDraw.Draw(image)
    r = marker_radius(image.size)
    width = max(2, round(r / 3))
    kinds = {"matched_gt": drawn.gt_xy[drawn.gt_matched],
             "tp": drawn.pred_xy[drawn.pred_matched],
             "missed": drawn.gt_xy[~drawn.gt_matched],
             "fp": drawn.pred_xy[~drawn.pred_matched]}
    outside = 0
    w, h = image.size
    for kind, marker in MARKERS.items():
        xy = kinds[kind] * np.asarray(scale)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w) & (xy[:, 1] >= 0) & (xy[:, 1] <= h)
        outside += int((~inside).sum())
        for x, y in xy[inside].tolist():
            # a dark outline one pixel wider on each side, then the marker
            _shape(draw, marker.shape, x, y, r + 1, width + 2, OUTLINE)
            _shape(draw, marker.shape, x, y, r, width, marker.rgb)
    return outside


def _shape(draw, shape, x, y, r, width, colour):
    if shape == "circle":  # the stroke lies inside the box: the outline's box is larger
        draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=width)
    elif shape == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), outline=colour, width=width)
    elif shape == "plus":
        a = r * 0.6  # inside a matched ground truth's circle
        draw.line((x - a, y, x + a, y), fill=colour, width=width)
        draw.line((x, y - a, x, y + a), fill=colour, width=width)
    else:  # cross
        a = r * 0.8
        draw.line((x - a, y - a, x + a, y + a), fill=colour, width=width)
        draw.line((x - a, y + a, x + a, y - a), fill=colour, width=width)


def jpeg_uri(image) -> str:
    """A thumbnail as a base64 JPEG data URI (4:4:4 chroma: markers keep their colours)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def legend() -> str:
    """The markers as inline SVG, with their meaning."""
    items = []
    for marker in MARKERS.values():
        colour = "#%02x%02x%02x" % marker.rgb
        shape = {
            "circle": "<circle cx=8 cy=8 r=6 fill=none stroke-width=2.5",
            "square": "<rect x=2 y=2 width=12 height=12 fill=none stroke-width=2.5",
            "plus": "<path d='M3 8H13M8 3V13' stroke-width=2.5",
            "cross": "<path d='M3 3L13 13M3 13L13 3' stroke-width=2.5"}[marker.shape]
        items.append(f'<span class=marker><svg width=16 height=16 viewBox="0 0 16 16" '
                     f'style="background:#{BLANK[0]:02x}{BLANK[1]:02x}{BLANK[2]:02x}">'
                     f'{shape} stroke="{colour}"/></svg> {html.escape(marker.label)}</span>')
    return '<p class="legend">' + " ".join(items) + "</p>"
