"""Image decoding: the formats face sets ship, and a clear error for anything else."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edgekd.data.image import decode_image, encode_jpeg
from edgekd.errors import DataError


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((6, 5, 3), 77, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])
def test_lossless_formats_decode_exactly(fmt):
    image = decode_image(_encoded(fmt), "x")
    assert image.shape == (6, 5, 3) and image.dtype == np.uint8 and (image == 77).all()


def test_jpeg_round_trip_is_close():
    ramp = np.linspace(0, 255, 32, dtype=np.uint8)
    image = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.uint8(128)), axis=-1)
    assert np.abs(decode_image(encode_jpeg(image), "x").astype(int) - image).mean() < 2


@pytest.mark.parametrize("data", [_encoded("GIF"), _encoded("TIFF"), b"not an image"])
def test_other_bytes_are_refused_naming_the_source(data):
    with pytest.raises(DataError, match=r"unreadable image faces/7\.gif"):
        decode_image(data, "faces/7.gif")


def test_refusing_bytes_does_not_load_every_pillow_codec():
    """Probing unknown bytes must not import Pillow's whole plugin set (AVIF, WebP, ... C codecs)."""
    code = (
        "import sys\nfrom edgekd.data.image import decode_image\n"
        "try:\n    decode_image(b'\\x00' * 64, 'x')\nexcept Exception:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('PIL._') and m != 'PIL._util'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "_avif" not in out and "_webp" not in out, out
