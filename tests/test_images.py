"""Every kind of bad and odd photo a person might upload."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from i2v.errors import InvalidInput
from i2v.images import MAX_PIXELS, fit, open_photo


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_plain_rgb_photo(chelsea):
    photo, notes = open_photo(chelsea)
    assert photo.mode == "RGB" and min(photo.size) > 100
    assert notes == []


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (60, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = save(image, tmp_path / "rotated.jpg", exif=exif)
    photo, notes = open_photo(path)
    assert photo.size == (20, 60)
    top = np.asarray(photo)[:5].mean(axis=(0, 1))
    assert top[2] > 150 and top[0] < 100  # the blue strip is now on top
    assert any("orientation 6" in str(note) for note in notes)


@pytest.mark.parametrize(
    ("mode", "color", "suffix", "note"),
    [
        ("CMYK", (0, 255, 255, 0), "jpg", "CMYK"),
        ("L", 128, "png", None),
        ("1", 1, "png", None),
        ("RGBA", (255, 0, 0, 0), "png", "transparency"),
        ("LA", (0, 0), "png", "transparency"),
    ],
)
def test_modes_become_rgb(tmp_path, mode, color, suffix, note):
    path = save(Image.new(mode, (32, 24), color), tmp_path / f"photo.{suffix}")
    photo, notes = open_photo(path)
    assert photo.mode == "RGB" and photo.size == (32, 24)
    if note:
        assert any(note in str(n) for n in notes)


def test_transparent_pixels_flatten_onto_white(tmp_path):
    path = save(Image.new("RGBA", (32, 32), (255, 0, 0, 0)), tmp_path / "clear.png")
    photo, _ = open_photo(path)
    assert np.asarray(photo).min() == 255


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (32, 32), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, 16, 32))
    path = save(image, tmp_path / "palette.png", transparency=0)
    photo, notes = open_photo(path)
    pixels = np.asarray(photo)
    assert tuple(pixels[5, 5]) == (255, 0, 0)  # opaque red stays red
    assert tuple(pixels[5, 25]) == (255, 255, 255)  # transparent becomes white


def test_sixteen_bit_photo_is_scaled_not_clipped(tmp_path):
    data = np.linspace(0, 65535, 32 * 32, dtype=np.uint16).reshape(32, 32)
    path = save(Image.fromarray(data), tmp_path / "deep.png")
    photo, notes = open_photo(path)
    grey = np.asarray(photo)[..., 0]
    assert grey.min() == 0 and grey.max() == 255
    assert len(np.unique(grey)) > 200  # a gradient, not a white sheet
    assert any("8 bits" in str(note) for note in notes)


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    photo, notes = open_photo(path)
    r, g, b = np.asarray(photo).mean(axis=(0, 1))
    assert r > 200 and b < 50
    assert any("first frame" in str(note) for note in notes)


def test_decompression_bomb_is_refused(tmp_path):
    side = int(MAX_PIXELS**0.5) + 100
    path = save(Image.new("1", (side, side)), tmp_path / "bomb.png")
    assert path.stat().st_size < 2_000_000  # small on disk, huge in memory
    with pytest.raises(InvalidInput, match="megapixels"):
        open_photo(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"name,age\nada,36\n", "not an image"),
        (b"", r"is empty \(0 bytes\)"),
    ],
)
def test_non_images_are_refused(tmp_path, content, match):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=match):
        open_photo(path)


def test_truncated_photo_is_refused(tmp_path, chelsea):
    path = tmp_path / "cut.png"
    path.write_bytes(chelsea.read_bytes()[:5000])
    with pytest.raises(InvalidInput, match="damaged or truncated"):
        open_photo(path)


def test_missing_and_tiny_photos(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        open_photo(tmp_path / "nope.png")
    path = save(Image.new("RGB", (4, 4)), tmp_path / "speck.png")
    with pytest.raises(InvalidInput, match="4x4: each side must be at least 16"):
        open_photo(path)


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("size", [(64, 32), (32, 64), (48, 48)])
def test_fit_gives_exact_size(chelsea, mode, size):
    photo, _ = open_photo(chelsea)
    assert fit(photo, *size, mode).size == size


def test_crop_keeps_the_center_and_pad_adds_black(tmp_path):
    image = Image.new("RGB", (90, 30), (0, 0, 255))
    image.paste((255, 0, 0), (30, 0, 60, 30))  # red center third
    cropped = np.asarray(fit(image, 30, 30, "crop"))
    assert cropped[..., 0].mean() > 250  # only the red center is left
    padded = np.asarray(fit(image, 30, 30, "pad"))
    assert padded[:8].max() == 0 and padded[-8:].max() == 0  # black bars above and below
