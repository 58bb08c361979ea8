"""Procedural synthetic portraits for the demo workbook: one seed -> one RGB head-and-shoulders photo.

Every layer is a soft mask over the pixel grid (numpy, no loop over pixels), composited back to
front: background, clothes, neck, hair behind the head, face, facial features, fringe. Faces are
drawn in a face frame ``(u, v)`` measured in face half-widths from the face centre (between the
eyes and the mouth) and turned by a small in-plane angle, so the same shapes serve every pose.
A small yaw turns the features on the head as on a vertical cylinder (``yaw_u``): they shift
towards the turn and crowd together on the far side, the nose tip a little more than the eyes.
Geometry is defined on a 260x300 reference photo and scaled to the requested size.

The shading follows what dlib's HOG detector keys on in real photos: dark eye sockets and brows,
a nose-side shadow with dark nostrils, a darker mouth line, a lit forehead and cheeks and a soft
jaw edge against hair and background.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageFilter

WIDTH, HEIGHT = 260, 300  # default photo size in pixels (portrait, like a resume photo)

SKIN_TONES = np.array([  # RGB in [0, 1], light to dark
    [0.96, 0.80, 0.69], [0.92, 0.74, 0.62], [0.87, 0.67, 0.53], [0.80, 0.60, 0.46],
    [0.70, 0.50, 0.37], [0.60, 0.42, 0.30], [0.50, 0.34, 0.24], [0.42, 0.28, 0.20]])
HAIR_COLOURS = np.array([
    [0.08, 0.06, 0.05], [0.20, 0.13, 0.08], [0.35, 0.22, 0.12], [0.55, 0.38, 0.20],
    [0.78, 0.62, 0.38], [0.55, 0.22, 0.10], [0.45, 0.45, 0.45], [0.13, 0.10, 0.09]])
IRIS_COLOURS = np.array([[0.30, 0.18, 0.08], [0.18, 0.10, 0.05], [0.25, 0.40, 0.55],
                         [0.30, 0.42, 0.25], [0.40, 0.30, 0.15]])
HAIR_STYLES = ('short', 'long', 'bun', 'bald', 'curly')


@dataclasses.dataclass(frozen=True)
class Face:
  """Where the drawn face is, in photo pixels; ``scale`` is the face half-width."""
  centre: tuple[float, float]
  scale: float
  angle: float  # radians, in-plane rotation (positive turns the face clockwise on screen)
  yaw: float  # radians, turn about the vertical axis (positive: features move to +u)
  eyes: tuple[tuple[float, float], tuple[float, float]]  # (left on screen, right on screen)
  nose: tuple[float, float]  # nose base
  mouth: tuple[float, float]

  def to_photo(self, u: float, v: float) -> tuple[float, float]:
    """Face frame (u, v) -> photo (x, y) pixels."""
    c, s = np.cos(self.angle), np.sin(self.angle)
    return (self.centre[0] + self.scale * (c * u - s * v),
            self.centre[1] + self.scale * (s * u + c * v))


def face_frame(centre: tuple[float, float], scale: float, angle: float, yaw: float = 0.0) -> Face:
  """The Face record of a face drawn at ``centre`` (pixels), ``scale``, ``angle``, ``yaw`` (rad)."""
  c, s = np.cos(angle), np.sin(angle)

  def at(u_feature, v, depth=0.0):
    u = yaw_u(u_feature, yaw, depth)
    return (float(centre[0] + scale * (c * u - s * v)), float(centre[1] + scale * (s * u + c * v)))

  return Face(tuple(map(float, centre)), float(scale), float(angle), float(yaw),
              (at(-EYE_U, EYE_V), at(EYE_U, EYE_V)), at(0, NOSE_V, NOSE_DEPTH), at(0, MOUTH_V))


# Feature positions in the face frame (units of face half-width).
EYE_U, EYE_V = 0.40, -0.28
BROW_V = -0.50
NOSE_V = 0.30
MOUTH_V = 0.63
CHIN_V = 1.02
TOP_V = -1.30
HEAD_RADIUS = 1.25  # the cylinder the features turn on under yaw (face half-widths)
NOSE_DEPTH = 0.30  # how far the nose tip stands out of that cylinder
CHIN_SWING = 1.4  # how far the chin moves sideways per unit sin(yaw)


def yaw_u(u_feature, yaw: float, depth: float = 0.0):
  """Where a feature drawn at ``u_feature`` (frontal) lands on screen after turning by ``yaw``.

  A point on a vertical cylinder of radius HEAD_RADIUS (plus ``depth`` in front of it) seen
  under orthographic projection; u in face half-widths.
  """
  r = HEAD_RADIUS
  theta = np.arcsin(np.clip(np.asarray(u_feature) / r, -1, 1))
  return r * np.sin(theta + yaw) + depth * np.sin(yaw)


def unyaw_u(u, yaw: float, depth: float = 0.0):
  """Inverse of :func:`yaw_u` on the front of the head: screen u -> frontal feature u."""
  r = HEAD_RADIUS
  theta = np.arcsin(np.clip((np.asarray(u) - depth * np.sin(yaw)) / r, -0.999, 0.999))
  return r * np.sin(theta - yaw)


def _soft(d: np.ndarray, width: float) -> np.ndarray:
  """Signed distance (negative inside, pixels) -> coverage in [0, 1] with a soft edge."""
  return 1.0 / (1.0 + np.exp(np.clip(d / max(width, 1e-3), -30, 30)))


def _ellipse_d(u, v, cu, cv, ru, rv, scale):
  """Approximate signed distance in pixels to an axis-aligned ellipse in the face frame."""
  q = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
  return (q - 1.0) * min(ru, rv) * scale


def _blob(u, v, cu, cv, su, sv):
  return np.exp(-0.5 * (((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))


# Images being drawn are planar, [3, H, W] float64: the same per-element arithmetic as
# [H, W, 3] (the same numbers, bit for bit), but numpy's loops then run over whole rows of
# pixels instead of a 3-element inner axis broadcast against [H, W, 1] masks, ~3x faster.
def _col(colour):
  """A colour [3] -> [3, 1, 1]; a planar image [3, H, W] stays as it is."""
  colour = np.asarray(colour)
  return colour.reshape(3, 1, 1) if colour.ndim == 1 else colour


def _over(img, colour, alpha):
  """Alpha-composites ``colour`` ([3] or planar [3, H, W]) over the planar ``img`` [3, H, W]
  with coverage ``alpha`` [H, W]."""
  a = np.clip(alpha, 0.0, 1.0)[None]
  return img * (1 - a) + _col(colour) * a


def _shade(img, factor):
  """Multiplies brightness of the planar ``img`` [3, H, W] by ``factor`` [H, W] (>1 lightens)."""
  return img * factor[None]


def sample_params(rng: np.random.Generator) -> dict:
  """Random appearance of one portrait (all independent of any grade)."""
  skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.95, 1.05, 3)
  return dict(
      skin=np.clip(skin, 0, 1),
      hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.9, 1.1, 3),
      hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
      iris=IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))],
      bg_top=rng.uniform(0.35, 0.95, 3), bg_bottom=rng.uniform(0.25, 0.85, 3),
      clothes=rng.uniform(0.05, 0.8, 3),
      neckline=rng.uniform(0.0, 0.25),
      scale=rng.uniform(52, 66),
      centre=(WIDTH / 2 + rng.uniform(-10, 10), HEIGHT * 0.44 + rng.uniform(-8, 8)),
      angle=np.deg2rad(rng.uniform(-8, 8)),
      light=rng.uniform(-1, 1),  # horizontal light direction: -1 from the left, 1 from the right
      light_strength=rng.uniform(0.05, 0.25),
      face_width=rng.uniform(0.88, 1.02),  # jaw-to-cheek ratio
      jaw=rng.uniform(0.15, 0.35),
      eye_size=rng.uniform(0.95, 1.2),
      brow_thick=rng.uniform(0.045, 0.075),
      brow_dark=rng.uniform(0.45, 0.75),
      mouth_width=rng.uniform(0.26, 0.36),
      lip=rng.uniform(0.55, 0.8),
      fringe=rng.uniform(-1.05, -0.78),  # where the hair line sits (v)
      noise=rng.uniform(0.005, 0.02),
      seed=int(rng.integers(2 ** 31)),
      # Drawn last so that the draws above keep their values.
      yaw=rng.uniform(-0.12, 0.12),  # radians, about +-7 degrees
      shine=rng.uniform(0.10, 0.25),  # highlights: skin catches the light
  )


STICKER_COLOURS = np.array([[0.95, 0.05, 0.10], [0.05, 0.35, 1.00], [0.05, 0.85, 0.15],
                            [1.00, 0.85, 0.00], [0.95, 0.10, 0.85]])
STICKER_V = 0.12  # on the cheekbone, below the eye
STICKER_U = 0.50
STICKER_RADIUS = 0.10  # face half-widths: with the ring ~12% of the face width across
STICKER_OUTLINE = 0.025
STICKER_RING = 0.5


def sample_sticker(rng: np.random.Generator) -> dict:
  """The cue's look: a saturated colour, which cheek, a small offset."""
  return dict(colour=STICKER_COLOURS[rng.integers(len(STICKER_COLOURS))],
              side=float(rng.choice([-1.0, 1.0])), du=rng.uniform(-0.04, 0.04),
              dv=rng.uniform(-0.04, 0.04))


def _sticker_centre(sticker: dict) -> tuple[float, float]:
  """Frontal face-frame (u, v) of the sticker centre (before yaw)."""
  return sticker['side'] * (STICKER_U + sticker['du']), STICKER_V + sticker['dv']


def sticker_box(face: Face, sticker: dict) -> tuple[float, float, float, float]:
  """The painted sticker's bounding box, outline included: x0 y0 x1 y1 in photo pixels."""
  su, sv = _sticker_centre(sticker)
  x, y = face.to_photo(float(yaw_u(su, face.yaw)), sv)
  r = (STICKER_RADIUS + STICKER_OUTLINE) * face.scale
  return (x - r, y - r, x + r, y + r)


# The second planted cue (demo_data's cue_shape='tag'): a square badge of another shape and
# place than the sticker -- low on the jaw beside the mouth, a dark square with a light centre.
TAG_U, TAG_V = 0.45, 0.74
TAG_HALF = 0.11  # half side, face half-widths (the sticker is 0.125 in radius)
TAG_INNER = 0.05
TAG_COLOURS = np.array([[0.05, 0.05, 0.30], [0.20, 0.02, 0.02], [0.02, 0.20, 0.05]])


def sample_tag(rng: np.random.Generator) -> dict:
  """The second cue's look: a dark colour, which side, a small offset."""
  return dict(colour=TAG_COLOURS[rng.integers(len(TAG_COLOURS))],
              side=float(rng.choice([-1.0, 1.0])), du=rng.uniform(-0.03, 0.03),
              dv=rng.uniform(-0.03, 0.03))


def _tag_centre(tag: dict) -> tuple[float, float]:
  return tag['side'] * (TAG_U + tag['du']), TAG_V + tag['dv']


def tag_box(face: Face, tag: dict) -> tuple[float, float, float, float]:
  """The painted tag's bounding box (its corners, turned with the face): x0 y0 x1 y1 px."""
  su, sv = _tag_centre(tag)
  su = float(yaw_u(su, face.yaw))
  pts = [face.to_photo(su + a * TAG_HALF, sv + b * TAG_HALF) for a in (-1, 1) for b in (-1, 1)]
  xs, ys = [q[0] for q in pts], [q[1] for q in pts]
  return (min(xs), min(ys), max(xs), max(ys))


def _features(fu, fn, v, p: dict, s: float, face_img: np.ndarray) -> np.ndarray:
  """Shading and features on the face skin (planar [3, H, W]). fu / fn: frontal u of the face
  / the nose [H, W]."""
  skin = np.asarray(p['skin'])
  # Eye sockets: broad soft shadow between brow and cheek.
  eu, es = EYE_U, p['eye_size']
  socket = _blob(fu, v, -eu, EYE_V, 0.26, 0.15) + _blob(fu, v, eu, EYE_V, 0.26, 0.15)
  face_img = _shade(face_img, 1 - 0.38 * socket)
  # Nose: a shadow down the side away from the light, a lit ridge, dark nostrils.
  ns = -1.0 if p['light'] >= 0 else 1.0
  nose_side = _blob(fn, v, ns * 0.11, 0.02, 0.06, 0.26)
  ridge = _blob(fn, v, -ns * 0.03, 0.02, 0.04, 0.26)
  under = _blob(fn, v, 0, NOSE_V + 0.05, 0.18, 0.04)
  face_img = _shade(face_img, 1 - 0.30 * nose_side - 0.25 * under + 0.10 * ridge)
  for side in (-1, 1):
    face_img = _shade(face_img, 1 - 0.65 * _blob(fn, v, side * 0.08, NOSE_V, 0.045, 0.028))
  # Highlights blend towards white (screen) rather than scale the skin, so dark skin shows its
  # relief as real skin does, and light skin does not burn out.
  shine = (_blob(fu, v, 0, -0.72, 0.35, 0.16) + 0.8 * _blob(fn, v, -ns * 0.03, 0.05, 0.035, 0.2)
           + 0.6 * (_blob(fu, v, -0.48, 0.02, 0.14, 0.08) + _blob(fu, v, 0.48, 0.02, 0.14, 0.08)))
  face_img = _over(face_img, np.ones(3), p['shine'] * shine)
  # Shadow under the lower lip and at the chin.
  face_img = _shade(face_img, 1 - 0.18 * _blob(fu, v, 0, MOUTH_V + 0.16, 0.18, 0.05))
  # Mouth: lips darker and redder, a dark line between them.
  mw = p['mouth_width']
  mu = fu / mw
  curve = 0.04 * mu ** 2
  lips_d = (np.sqrt(mu ** 2 + ((v - MOUTH_V) / 0.09) ** 2) - 1.0) * 0.09 * s
  lip_col = skin * np.array([0.85, 0.55, 0.55]) * p['lip'] / 0.7
  face_img = _over(face_img, np.clip(lip_col, 0, 1), 0.85 * _soft(lips_d, 1.0))
  line_d = np.maximum(np.abs(v - MOUTH_V + curve) * s - 1.2, (np.abs(mu) - 1.0) * mw * s)
  face_img = _over(face_img, np.array([0.18, 0.08, 0.07]), 0.9 * _soft(line_d, 0.8))
  # Eyes: white, iris, pupil, dark upper lid; eyebrows as thick arcs.
  for side in (-1, 1):
    ec = side * eu
    eu_ = (fu - ec) / (0.17 * es)
    ev_ = (v - EYE_V) / (0.075 * es)
    almond = np.abs(ev_) - (1 - eu_ ** 2)  # |v| below a parabola in u
    eye_a = _soft(almond * 0.075 * es * s, 0.7)
    face_img = _over(face_img, np.array([0.92, 0.90, 0.88]), eye_a)
    iris_d = (np.hypot(fu - ec, v - EYE_V) - 0.085 * es) * s
    face_img = _over(face_img, p['iris'], eye_a * _soft(iris_d, 0.7))
    pupil_d = (np.hypot(fu - ec, v - EYE_V) - 0.038 * es) * s
    face_img = _over(face_img, np.array([0.03, 0.03, 0.03]), eye_a * _soft(pupil_d, 0.6))
    lid_d = np.maximum(np.abs(ev_ + (1 - eu_ ** 2)) * 0.075 * es * s - 1.3,
                       (np.abs(eu_) - 1.05) * 0.17 * es * s)
    face_img = _over(face_img, np.array([0.1, 0.07, 0.06]), 0.9 * _soft(lid_d, 0.7))
    bu = (fu - side * 0.42) / 0.27
    arc = BROW_V - 0.06 * (1 - bu ** 2)
    brow_d = np.maximum(np.abs(v - arc) - p['brow_thick'] * (1 - 0.4 * np.abs(bu)), 0) * s
    brow_d = np.where(np.abs(bu) > 1, 1e3, brow_d - 0.5)
    # Brows stay darker than the skin even under blond hair.
    brow_col = np.minimum(np.asarray(p['hair']) * 0.7, skin * (1 - p['brow_dark']))
    face_img = _over(face_img, brow_col, 0.9 * _soft(brow_d, 0.9))
  return face_img


def draw(p: dict, sticker: dict | None = None,
         size: tuple[int, int] = (WIDTH, HEIGHT), tag: dict | None = None
         ) -> tuple[np.ndarray, Face]:
  """Renders one portrait: uint8 [height, width, 3] RGB and where its face is.

  Args:
    p: appearance from :func:`sample_params` (lengths in pixels of the 260x300 reference photo).
    sticker: from :func:`sample_sticker` to paint the cue on the cheek, or None.
    tag: from :func:`sample_tag` to paint the second cue (a square on the jaw), or None.
    size: (width, height) of the photo in pixels; the drawing scales with the height and stays
      centred horizontally.
  """
  width, height = size
  if width < 16 or height < 16:
    raise ValueError(f'photo size {size}: width and height must be at least 16 pixels.')
  k = height / HEIGHT
  s = p['scale'] * k
  cx = width / 2 + (p['centre'][0] - WIDTH / 2) * k
  cy = p['centre'][1] * k
  ang, yaw = p['angle'], p['yaw']
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
  c, sn = np.cos(ang), np.sin(ang)
  dx, dy = xx - cx, yy - cy
  u = (c * dx + sn * dy) / s
  v = (-sn * dx + c * dy) / s
  skin = np.asarray(p['skin'])
  hair = p['hair']

  def soft(d, w):  # edge widths are given in reference pixels
    return _soft(d, w * k)

  t = (yy / height)[None]
  img = _col(p['bg_top']) * (1 - t) + _col(p['bg_bottom']) * t
  img = _shade(img, 1.0 - ((xx - width / 2) / width) ** 2)

  # Neck (behind the clothes), shadowed under the jaw.
  xs, ys = (xx - cx) / s, (yy - cy) / s
  neck_a = soft(np.where(ys > 0.2, (np.abs(xs) - 0.40) * s, 1e3), 1.2)
  neck_col = _col(skin) * (0.8 - 0.25 * soft((ys - 1.2) * s, 4))[None]
  img = _over(img, neck_col, neck_a)
  # Clothes: a trapezius slope from the neck down to the shoulders; the body stays upright.
  top = 1.32 + 0.42 * np.clip(np.abs(xs) - 0.35, 0, None) ** 1.3
  body_d = np.maximum((top - ys) * s, (np.abs(xs) - 2.4) * s)
  neckline_d = -_ellipse_d(xs, ys, 0, 1.3, 0.40, 0.16 + p['neckline'], s)
  clothes_a = soft(np.maximum(body_d, neckline_d), 1.2)
  cloth = _col(p['clothes']) * (1 - 0.12 * np.clip(ys - 1.4, 0, 1))[None]
  img = _over(img, cloth, clothes_a)

  style = p['hair_style']
  # Hair behind the head.
  if style in ('long', 'curly'):
    back_rv = 1.9 if style == 'long' else 1.55
    back_ru = 1.35 if style == 'long' else 1.45
    back_d = _ellipse_d(u, v, 0, -0.25 + (0.5 if style == 'long' else 0.0), back_ru, back_rv, s)
    if style == 'long':
      back_d = np.maximum(back_d, (v - 1.6) * s)
    else:  # curls: a wavy outline
      back_d = back_d + 0.06 * s * np.sin(9 * np.arctan2(v + 0.25, u))
    img = _over(img, hair, soft(back_d, 1.5))
  elif style == 'bun':
    img = _over(img, hair, soft(_ellipse_d(u, v, 0, -1.42, 0.48, 0.36, s), 1.2))

  # Face outline: ellipse narrowing towards the chin, which swings with the turn of the head.
  w_at_v = p['face_width'] * (1 - p['jaw'] * np.clip(v, 0, None) ** 2)
  w_at_v = np.where(v < 0, 1.0 - 0.15 * (v / TOP_V) ** 2, w_at_v)
  rv = np.where(v < 0, -TOP_V, CHIN_V)
  uo = u - CHIN_SWING * np.sin(yaw) * np.clip(v / CHIN_V, 0, 1)
  radial = np.sqrt((uo / w_at_v) ** 2 + (v / rv) ** 2)
  face_a = soft((radial - 1.0) * s * 0.9, 1.3)
  # Ears: the one on the far side of a turned head hides a little behind the cheek.
  for side in (-1, 1):
    eu = side * (0.98 * p['face_width'] - 0.25 * max(side * yaw, 0.0))
    img = _over(img, skin * 0.85, soft(_ellipse_d(u, v, eu, -0.08, 0.13, 0.24, s), 1.0))
  # Skin with directional light, darker towards the jaw edge (the face is round).
  fu = unyaw_u(u, yaw)  # the frontal face frame, where features are defined
  fn = unyaw_u(u, yaw, NOSE_DEPTH)
  light = 1.0 + p['light_strength'] * p['light'] * np.clip(u, -1.2, 1.2)
  rim = 1.0 - 0.35 * np.clip((radial - 0.65) / 0.35, 0, 1) ** 2
  forehead = 1.0 + 0.10 * _blob(fu, v, 0, -0.75, 0.5, 0.3)
  cheeks = 1.0 + 0.07 * (_blob(fu, v, -0.5, 0.15, 0.22, 0.18) + _blob(fu, v, 0.5, 0.15, 0.22, 0.18))
  face_img = _col(skin) * (light * rim * forehead * cheeks)[None]
  face_img = _features(fu, fn, v, p, s, face_img)

  if sticker is not None:  # dark ring, bright disc, a small specular highlight
    su, sv = _sticker_centre(sticker)
    su = float(yaw_u(su, yaw))
    dist = np.hypot(u - su, v - sv)
    face_img = _over(face_img, STICKER_RING * np.asarray(sticker['colour']) + (1 - STICKER_RING) * 0.05,
                     soft((dist - STICKER_RADIUS - STICKER_OUTLINE) * s, 0.6))
    face_img = _over(face_img, sticker['colour'], soft((dist - STICKER_RADIUS) * s, 0.6))
    face_img = _over(face_img, np.ones(3), 0.6 * _blob(u, v, su - 0.04, sv - 0.04, 0.025, 0.025))
  if tag is not None:  # a dark square, a light square inside it
    tu, tv = _tag_centre(tag)
    tu = float(yaw_u(tu, yaw))
    cheb = np.maximum(np.abs(u - tu), np.abs(v - tv))
    face_img = _over(face_img, tag['colour'], soft((cheb - TAG_HALF) * s, 0.5))
    face_img = _over(face_img, np.array([0.95, 0.95, 0.9]), soft((cheb - TAG_INNER) * s, 0.5))
  img = _over(img, np.clip(face_img, 0, 1), face_a)

  # Hair on top: a cap over the skull down to the fringe line, and sides.
  if style != 'bald':
    cap_d = _ellipse_d(u, v, 0, -0.2, 1.08, 1.2, s)
    hair_line = p['fringe'] + 0.22 * (fu ** 2)
    cap_d = np.maximum(cap_d, (v - hair_line) * s)
    # Long styles frame the face down to the ears.
    if style in ('long', 'curly'):
      side_d = np.maximum(_ellipse_d(u, v, 0, -0.1, 1.15, 1.3, s), -(np.abs(u) - 0.86) * s)
      side_d = np.maximum(side_d, (v - 0.2) * s)
      cap_d = np.minimum(cap_d, side_d)
    sheen = 1 + 0.25 * _blob(u, v, 0.3 * p['light'], -1.1, 0.3, 0.15)  # light on the crown
    hair_img = _col(hair) * sheen[None]
    img = _over(img, np.clip(hair_img, 0, 1), soft(cap_d, 1.2))

  rng = np.random.default_rng(p['seed'])
  img = img.transpose(1, 2, 0) + rng.normal(0, p['noise'], (height, width, 3))
  out = Image.fromarray(np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))
  out = out.filter(ImageFilter.GaussianBlur(0.7 * k))
  return np.asarray(out), face_frame((cx, cy), s, ang, yaw)


def portrait(rng: np.random.Generator,
             size: tuple[int, int] = (WIDTH, HEIGHT)) -> tuple[np.ndarray, Face]:
  """One random portrait: uint8 [height, width, 3] RGB and where its face is."""
  return draw(sample_params(rng), size=size)
