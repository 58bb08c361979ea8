"""Photo decoding: formats, modes, orientation, and every kind of bad bytes -> a reason."""
import io
import struct
import zlib

import numpy as np
import pytest
import skimage.data
from PIL import Image

from gradejax.data import images


def _encode(im: Image.Image, fmt: str = 'PNG', **kw) -> bytes:
  buf = io.BytesIO()
  im.save(buf, format=fmt, **kw)
  return buf.getvalue()


@pytest.fixture(scope='module')
def face():
  return skimage.data.astronaut()[40:168, 120:248]  # uint8 [128, 128, 3]


def _png_claiming_size(width: int, height: int) -> bytes:
  """A 1x1 PNG whose IHDR claims another size (a decompression bomb's header)."""
  data = bytearray(_encode(Image.new('RGB', (1, 1))))
  assert data[12:16] == b'IHDR'
  struct.pack_into('>II', data, 16, width, height)
  struct.pack_into('>I', data, 29, zlib.crc32(bytes(data[12:29])))
  return bytes(data)


def test_rgb_png_round_trip(face):
  out, reason = images.decode_photo(_encode(Image.fromarray(face)))
  assert reason is None
  np.testing.assert_array_equal(out, face)


def test_grayscale_becomes_three_equal_channels(face):
  gray = Image.fromarray(face).convert('L')
  out, reason = images.decode_photo(_encode(gray))
  assert reason is None and out.shape == (128, 128, 3) and out.dtype == np.uint8
  for c in range(3):
    np.testing.assert_array_equal(out[..., c], np.asarray(gray))


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
  values = np.array([[0, 257 * 100, 65535, 257 * 7]], np.uint16).repeat(64, 0).repeat(16, 1)
  im = Image.fromarray(values, 'I;16')
  out, reason = images.decode_photo(_encode(im))
  assert reason is None
  np.testing.assert_array_equal(out[0, ::16, 0], [0, 100, 255, 7])


def test_cmyk_jpeg_becomes_rgb(face):
  cmyk = Image.fromarray(face).convert('CMYK')
  out, reason = images.decode_photo(_encode(cmyk, 'JPEG', quality=95))
  assert reason is None and out.shape == (128, 128, 3)
  # Pillow's own CMYK->RGB of the decoded JPEG is the reference.
  ref = np.asarray(Image.open(io.BytesIO(_encode(cmyk, 'JPEG', quality=95))).convert('RGB'))
  np.testing.assert_array_equal(out, ref)
  assert np.abs(out.astype(int) - face).mean() < 6


def test_alpha_and_palette_transparency_composite_on_white(face):
  rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
  rgba[:, :64, 3] = 0
  out, reason = images.decode_photo(_encode(Image.fromarray(rgba, 'RGBA')))
  assert reason is None
  assert (out[:, :64] == 255).all()
  np.testing.assert_array_equal(out[:, 64:], face[:, 64:])
  pal = Image.fromarray(face).convert('P', palette=Image.Palette.ADAPTIVE, colors=16)
  pal.info['transparency'] = int(np.asarray(pal)[0, 0])
  out, reason = images.decode_photo(_encode(pal, transparency=pal.info['transparency']))
  assert reason is None and (out[0, 0] == 255).all()


def test_exif_orientation_is_applied(face):
  stored = Image.fromarray(np.rot90(face))  # rotated 90 degrees counter-clockwise
  exif = Image.Exif()
  exif[0x0112] = 6  # "rotate 90 CW to display"
  out, reason = images.decode_photo(_encode(stored, exif=exif))
  assert reason is None
  np.testing.assert_array_equal(out, face)
  plain, _ = images.decode_photo(_encode(stored))
  np.testing.assert_array_equal(plain, np.rot90(face))


@pytest.mark.parametrize('make,code', [
    (lambda f: _encode(Image.fromarray(f), 'JPEG')[:1500], 'image_corrupt'),  # truncated
    (lambda f: _encode(Image.fromarray(f))[:60] + b'\x00' * 200 + _encode(Image.fromarray(f))[260:],
     'image_corrupt'),
    (lambda f: b'<svg xmlns="http://www.w3.org/2000/svg"/>', 'image_unsupported'),
    (lambda f: b'', 'image_empty'),
    (lambda f: _encode(Image.fromarray(f[:20, :100])), 'image_too_small'),
    (lambda f: _png_claiming_size(20000, 20000), 'image_too_large'),  # DecompressionBombError
    (lambda f: _png_claiming_size(10000, 10000), 'image_too_large'),  # DecompressionBombWarning
])
def test_bad_bytes_give_a_reason(face, make, code):
  out, reason = images.decode_photo(make(face))
  assert out is None
  assert reason.split(':')[0] == code, reason


def test_bomb_limit_follows_pillow_setting(face, monkeypatch):
  data = _encode(Image.fromarray(face))
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100 * 100)
  assert images.decode_photo(data)[1].startswith('image_too_large')
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 128 * 128)
  assert images.decode_photo(data)[1] is None


def test_min_side_is_configurable(face):
  data = _encode(Image.fromarray(face[:40, :40]))
  assert images.decode_photo(data)[1].startswith('image_too_small')
  out, reason = images.decode_photo(data, min_side=32)
  assert reason is None and out.shape == (40, 40, 3)


def test_png_written_without_metadata(tmp_path, face):
  path = tmp_path / 'chip.png'
  images.write_png(path, face)
  raw = path.read_bytes()
  chunks, pos = [], 8
  while pos < len(raw):
    n, = struct.unpack('>I', raw[pos:pos + 4])
    chunks.append(raw[pos + 4:pos + 8].decode())
    pos += 12 + n
  assert set(chunks) == {'IHDR', 'IDAT', 'IEND'}
  np.testing.assert_array_equal(images.read_png(path), face)


@pytest.mark.parametrize('fmt,kw', [('WEBP', {'lossless': True}), ('TIFF', {}), ('GIF', {}),
                                    ('BMP', {}), ('TIFF', {'compression': 'tiff_lzw'})])
def test_other_raster_formats_decode_like_pillow(face, fmt, kw):
  data = _encode(Image.fromarray(face), fmt, **kw)
  out, reason = images.decode_photo(data)
  assert reason is None
  ref = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
  np.testing.assert_array_equal(out, ref)
  if fmt != 'GIF':  # GIF is palette-quantised
    np.testing.assert_array_equal(out, face)


def test_vector_pictures_are_named():
  from fixtures.make_xlsxwriter_grades import emf
  out, reason = images.decode_photo(emf())
  assert out is None and reason.startswith('image_unsupported: a vector drawing (WMF)')
  out, reason = images.decode_photo(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')
  assert out is None and 'it looks like SVG' in reason


def test_one_pixel_image():
  out, reason = images.decode_photo(_encode(Image.new('RGB', (1, 1))))
  assert out is None and reason == 'image_too_small: 1x1 px, the shorter side must be >= 64 px'
