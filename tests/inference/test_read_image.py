"""Every image people have, read as viewers show it (issue 10, acceptance 2).

The expected arrays come from outside ``read_image``: the 8-bit upright image the files were
made from, and conversions written out here with numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fcnseg
from fcnseg.errors import FcnsegError
from fcnseg.inference import read_image

CAMVID = Path(__file__).resolve().parents[3] / "shared" / "data" / "camvid"
VAL_IMAGE = CAMVID / "val" / "0016E5_07959.png"
needs_camvid = pytest.mark.skipif(not VAL_IMAGE.is_file(), reason=f"no CamVid at {CAMVID}")


def _rgb(seed: int = 0, size: tuple[int, int] = (12, 17)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@needs_camvid
def test_sixteen_bit_and_exif_rotated_camvid_images_give_the_upright_8_bit_labels(
    tmp_path: Path,
) -> None:
    model = fcnseg.load_model("camvid-fcn8s")
    upright = np.asarray(Image.open(VAL_IMAGE).convert("RGB"))
    expected = fcnseg.predict(model, VAL_IMAGE, precision="fp32")

    # 16-bit: every value times 257 (0-255 onto 0-65535), as a 48-bit RGB PNG and as a
    # 16-bit grey PNG (mode I;16) next to the 8-bit grey image.
    wide = tmp_path / "wide.png"
    _write_png16(wide, upright.astype(np.uint16) * 257)
    assert np.array_equal(read_image(wide), upright)
    assert np.array_equal(fcnseg.predict(model, wide, precision="fp32"), expected)
    grey = np.asarray(Image.fromarray(upright).convert("L"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    Image.fromarray(grey).save(tmp_path / "grey8.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    assert np.array_equal(read_image(tmp_path / "grey16.png"), read_image(tmp_path / "grey8.png"))
    grey_labels = fcnseg.predict(model, [tmp_path / "grey16.png", tmp_path / "grey8.png"])
    assert np.array_equal(grey_labels[0], grey_labels[1])

    # EXIF orientation 6: the pixels stored turned a quarter anticlockwise, the tag saying
    # "turn them clockwise to show"; stored 480 x 360, shown 360 x 480 like the original.
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    stored.save(rotated, quality=95, subsampling=0, exif=exif)
    assert Image.open(rotated).size == (360, 480)  # stored sideways
    labels = fcnseg.predict(model, rotated, precision="fp32")
    assert labels.shape == expected.shape == (360, 480)
    assert (labels == expected).mean() >= 0.99


def test_modes_become_rgb_scaled_by_their_type(tmp_path: Path) -> None:
    rgb = _rgb()
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    grey3 = np.repeat(grey[:, :, None], 3, axis=2)
    cases = {
        "grey.png": (Image.fromarray(grey), grey3),
        "grey_alpha.png": (Image.fromarray(grey).convert("LA"), grey3),
        "rgba.png": (Image.fromarray(rgb).convert("RGBA"), rgb),
        # 16-bit grey, mode I (32-bit ints) as older Pillow opens 16-bit PNGs: 0-65535
        "int.tif": (Image.fromarray(grey.astype(np.int32) * 257), grey3),
        # float images are 0-1
        "float.tif": (Image.fromarray(grey.astype(np.float32) / 255), grey3),
    }
    for name, (image, expected) in cases.items():
        image.save(tmp_path / name)
        assert np.array_equal(read_image(tmp_path / name), expected), name
    # palette and CMYK images: what PIL's own conversion to RGB shows
    palette = Image.fromarray(rgb).convert("P")
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(read_image(tmp_path / "palette.png"), np.asarray(palette.convert("RGB")))
    cmyk = Image.fromarray(rgb).convert("CMYK")
    cmyk.save(tmp_path / "cmyk.tif")
    assert np.array_equal(read_image(tmp_path / "cmyk.tif"), np.asarray(cmyk.convert("RGB")))
    # out-of-range floats are clipped, NaN is 0
    values = np.array([[-1.0, 0.5, 2.0, np.nan]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "odd.tif")
    assert read_image(tmp_path / "odd.tif")[0, :, 0].tolist() == [0, 128, 255, 0]


def test_unreadable_files_are_one_error_naming_them(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    truncated = tmp_path / "cut.png"
    Image.fromarray(_rgb(size=(64, 64))).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    for path in (text, truncated, tmp_path / "missing.png"):
        with pytest.raises(FcnsegError, match=path.name):
            read_image(path)


def _write_png16(path: Path, rgb16: np.ndarray) -> None:
    # A 48-bit RGB PNG (PIL writes no 16-bit colour PNGs): the rows by hand, zlib, CRCs.
    import struct
    import zlib

    height, width, _ = rgb16.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
