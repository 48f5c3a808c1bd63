"""Image decoding with errors that name the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgekd.errors import DataError

# Face sets ship JPEG or PNG (BMP costs nothing). Naming them keeps Pillow from importing every plugin
# (its AVIF, WebP, TIFF, ... codecs) to probe bytes that are not an image: less untrusted-input surface,
# and Pillow 13's _avif module, once imported here, was seen in a later gc crash of the test process.
FORMATS = ("JPEG", "PNG", "BMP")


def decode_image(data: bytes, source: str) -> np.ndarray:
    """Decode JPEG/PNG/BMP bytes to ``(H, W, 3)`` uint8 RGB; anything else raises :class:`DataError`."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            img.load()
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"corrupt or unreadable image {source}: {exc}") from exc


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8; missing or corrupt files raise :class:`DataError` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"image not found: {path}") from exc
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc
    return decode_image(data, str(path))


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """Encode ``(H, W, 3)`` uint8 RGB as JPEG bytes (for .bin/RecordIO writers and fixtures)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB").save(
        buf, format="JPEG", quality=quality
    )
    return buf.getvalue()
