"""Feature visualisation on toy nets with known answers (gradejax/optvis)."""
import json
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import skimage.transform

from gradejax import imageops, nets
from gradejax.optvis import dataset_examples, inversion
from gradejax.optvis import objectives as O
from gradejax.optvis import param as P
from gradejax.optvis import regularisers as G
from gradejax.optvis import render as R
from gradejax.optvis import transform as T
from helpers import ROOT, child_env

NO_TRANSFORM = R.Settings(steps=200, learning_rate=0.05)


class Linear(nn.Module):
  k: int = 3

  @nn.compact
  def __call__(self, x, *, relu=nn.relu):
    return nets.tap(self, 'logits', nn.Dense(self.k)(x.reshape(x.shape[0], -1)))


class Conv(nn.Module):
  @nn.compact
  def __call__(self, x, *, relu=nn.relu):
    h = nets.tap(self, 'pre', nn.Conv(8, (3, 3))(x))  # pre-activation: no dead units
    h = nets.tap(self, 'conv', relu(h))
    h = nets.tap(self, 'conv2', relu(nn.Conv(8, (3, 3), strides=2)(h)))
    return nets.tap(self, 'logits', nn.Dense(3)(nets.tap(self, 'pool', h.mean((1, 2)))))


@pytest.fixture(scope='module')
def conv():
  m = Conv()
  x = jax.random.uniform(jax.random.key(0), (4, 24, 24, 3))
  return nets.bind(m, m.init(jax.random.key(1), x)), x


def test_linear_unit_under_l2_converges_to_the_weight_image():
  # max_x w.x - lam * mean(x^2) has its optimum at x = D w / (2 lam): the weight image (lam
  # large enough that the optimum is small and Adam reaches it).
  m = Linear()
  v = m.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  fn = nets.bind(m, v)
  obj = O.logit(1) - 50.0 * G.l2(centre=0.0)
  img, _, hist = R.render(fn, obj, P.pixel(8, 8, squash=None), 1, jax.random.key(1),
                          R.Settings(steps=400, learning_rate=0.01))
  w = np.asarray(v['params']['Dense_0']['kernel'][:, 1])
  x = np.asarray(img).reshape(-1)
  assert x @ w / np.linalg.norm(x) / np.linalg.norm(w) > 0.99
  assert hist[-1, 0] > hist[0, 0]


@pytest.mark.parametrize('name', ['neuron', 'channel', 'layer', 'logit', 'probability',
                                  'direction', 'sum', 'product', 'channel_batch'])
def test_objective_rises_for_every_kind(conv, name):
  fn, _ = conv
  obj = {'neuron': O.neuron('pre', 2), 'channel': O.channel('conv', 1), 'layer': O.layer('conv'),
         'logit': O.logit(0), 'probability': O.probability(2),
         'direction': O.direction('pool', jnp.linspace(-1, 1, 8)),
         'sum': O.channel('conv', 1) + 2.0 * O.neuron('pre', 3, batch=0),
         'product': O.channel('pre', 1) * O.channel('pre', 4),
         'channel_batch': O.channel_batch('conv2', [0, 1, 2, 3])}[name]
  settings = R.Settings(steps=48, learning_rate=0.05,
                        robustness=T.Robustness(pad=2, jitter=2, scale=(0.95, 1.05), rotate=5))
  _, _, hist = R.render(fn, obj, P.fourier(24, 24), 4, jax.random.key(2), settings)
  hist = np.asarray(hist)
  assert hist[-4:].mean() > hist[:4].mean() + 1e-4, (hist[:4].mean(), hist[-4:].mean())


def test_objective_values_on_hand_made_activations():
  # A [4, 3, 5, 6] tap (odd, unequal sides: the centre is (1, 2)) and outputs [4, 3], scored by
  # each objective and by explicit numpy loops over images, positions and channels.
  rng = np.random.default_rng(0)
  a = rng.normal(size=(4, 3, 5, 6)).astype(np.float32)
  out = rng.normal(size=(4, 3)).astype(np.float32)
  acts, imgs = {'t': jnp.asarray(a), 'v': jnp.asarray(a[:, 0, 0])}, jnp.zeros((4, 2, 2, 3))
  score = lambda obj: np.asarray(obj(imgs, jnp.asarray(out), acts))

  def loop(f):
    return np.array([f(b) for b in range(4)], np.float32)

  def mean_over_positions(b, g):
    return np.mean([g(a[b, y, x]) for y in range(3) for x in range(5)])

  close = lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  close(score(O.channel('t', 4)), loop(lambda b: mean_over_positions(b, lambda v: v[4])))
  close(score(O.neuron('t', 4)), loop(lambda b: a[b, 1, 2, 4]))
  close(score(O.neuron('t', 4, y=0, x=3)), loop(lambda b: a[b, 0, 3, 4]))
  close(score(O.neuron('v', 5)), loop(lambda b: a[b, 0, 0, 5]))  # a [B, C] tap
  close(score(O.layer('t')), loop(lambda b: np.mean(a[b] ** 2)))
  vec = rng.normal(size=6).astype(np.float32)
  close(score(O.direction('t', vec)), loop(lambda b: mean_over_positions(b, lambda v: v @ vec)))
  close(score(O.logit(2)), out[:, 2])
  soft = np.exp(out) / np.exp(out).sum(1, keepdims=True)
  close(score(O.probability(1)), soft[:, 1])
  # batch=i scores image i only; the batched forms give image i unit units[i].
  close(score(O.channel('t', 4, batch=2)), [0, 0, mean_over_positions(2, lambda v: v[4]), 0])
  units = [3, 0, 5, 1]
  close(score(O.channel_batch('t', units)),
        loop(lambda b: mean_over_positions(b, lambda v: v[units[b]])))
  close(score(O.neuron_batch('t', units)), loop(lambda b: a[b, 1, 2, units[b]]))
  # Composition: sums, constants, weights and products, image by image.
  ch, ne, lo = (score(O.channel('t', 4)), score(O.neuron('t', 4)), score(O.logit(2)))
  close(score((O.channel('t', 4) + 2 * O.neuron('t', 4)) * O.logit(2) - 1),
        (ch + 2 * ne) * lo - 1)
  close(score(O.interpolate(O.neuron('t', 4), O.logit(2), 4)),
        [(1 - t) * n + t * l for t, n, l in zip([0, 1 / 3, 2 / 3, 1], ne, lo)])
  # Diversity: minus the mean cosine similarity of each image's Gram matrix to the others'.
  grams = [sum(np.outer(a[b, y, x], a[b, y, x]) for y in range(3) for x in range(5)).ravel()
           for b in range(4)]
  cos = lambda u, v: u @ v / np.linalg.norm(u) / np.linalg.norm(v)
  close(score(O.diversity('t')),
        loop(lambda b: -np.mean([cos(grams[b], grams[c]) for c in range(4) if c != b])))


def test_fourier_parameterisation_represents_an_image(conv):
  fn, _ = conv
  target = skimage.transform.resize(skimage.data.astronaut(), (32, 32), anti_aliasing=True)
  target = jnp.asarray(0.05 + 0.9 * target, jnp.float32)[None]
  fit = O.Objective(lambda i, o, a: -jnp.abs(i - target).reshape(1, -1).mean(1))
  par = P.fourier(32, 32, decorrelate=True, squash=None)
  img, _, _ = R.render(lambda x, relu=None: (x[:, 0, 0], {}), fit, par, 1, jax.random.key(0),
                       R.Settings(steps=500, learning_rate=0.02))
  assert float(jnp.abs(img - target).mean()) < 0.01


def test_fixed_key_gives_identical_images_and_another_key_differs(conv):
  fn, _ = conv
  s = R.Settings(steps=8, robustness=T.Robustness(pad=2, jitter=2, rotate=5))
  obj, par = O.channel_batch('conv', [0, 1]), P.fourier(24, 24)  # one compiled program
  a = R.render(fn, obj, par, 2, jax.random.key(5), s)[0]
  b = R.render(fn, obj, par, 2, jax.random.key(5), s)[0]
  c = R.render(fn, obj, par, 2, jax.random.key(6), s)[0]
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.allclose(a, c)


SHARDED = """
import json, sys, jax, numpy as np, flax.linen as nn
sys.path.insert(0, {tests!r})
from test_featurevis import Conv
from gradejax import imageops, nets
from gradejax.optvis import objectives as O, param as P, render as R, transform as T
m = Conv(); x = jax.random.uniform(jax.random.key(0), (4, 24, 24, 3))
fn = nets.bind(m, m.init(jax.random.key(1), x))
s = R.Settings(steps=12, robustness=T.Robustness(pad=2, jitter=2, scale=(0.9, 1.1), rotate=5))
img, hist = R.render_sharded(fn, lambda u: O.channel_batch('conv2', u), P.fourier(24, 24),
                             np.arange(6), jax.random.key(3), s)
np.save({out!r}, np.asarray(img))
print(json.dumps({{'devices': len(jax.devices()), 'shards': len(img.sharding.device_set)}}))
"""


def _sharded_run(tmp_path, devices):
  out = tmp_path / f'img{devices}.npy'
  env = child_env(XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
                  JAX_PLATFORMS='cpu')
  code = SHARDED.format(tests=str(ROOT / 'tests'), out=str(out))
  res = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                       timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  return json.loads(res.stdout.strip().splitlines()[-1]), np.load(out)


def test_four_cpu_devices_give_the_same_images_as_one(tmp_path):
  info4, img4 = _sharded_run(tmp_path, 4)
  info1, img1 = _sharded_run(tmp_path, 1)
  assert info4['devices'] == 4 and info1['devices'] == 1
  assert img4.shape == img1.shape == (6, 24, 24, 3)
  np.testing.assert_allclose(img4, img1, atol=1e-5)


def test_transforms_keep_shapes_and_range_and_identity_is_exact():
  x = jax.random.uniform(jax.random.key(0), (3, 20, 24, 3))
  y = T.apply(jax.random.key(1), x, T.Robustness(pad=4, jitter=3, scale=(0.8, 1.2), rotate=20))
  assert y.shape == x.shape
  assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
  assert not np.allclose(y[0], y[1])  # per-image draws
  np.testing.assert_array_equal(T.apply(jax.random.key(1), x, T.Robustness()), x)
  # A pure shift by the affine equals np.roll inside the image (bilinear at integer offsets).
  m, o = jnp.eye(2), jnp.array([0.0, 2.0])
  np.testing.assert_allclose(imageops.affine_resample(x[0], m, o, (20, 24))[:, :20],
                             np.asarray(x[0])[:, 2:22], atol=1e-6)


def test_diversity_lowers_pairwise_similarity(conv):
  fn, _ = conv
  s = R.Settings(steps=60, learning_rate=0.05)
  same = O.channel_batch('conv2', [1, 1, 1, 1])
  plain = R.render(fn, same, P.fourier(24, 24), 4, jax.random.key(0), s)[0]
  diverse = R.render(fn, same + 1.0 * O.diversity('conv2'), P.fourier(24, 24), 4,
                     jax.random.key(0), s)[0]
  sim = lambda imgs: float(O.gram_similarity(fn(imgs)[1]['conv2']))
  assert sim(diverse) < sim(plain)


def test_inversion_reduces_distance_and_caricature_raises_the_dot_product(conv):
  fn, x = conv
  target = fn(x[:2])[1]['conv']
  dist = lambda imgs: float(jnp.mean(inversion.representation_distance('conv', target)(
      imgs, *fn(imgs))))
  start = P.fourier(24, 24).image(P.fourier(24, 24).init(jax.random.key(4), 2))
  rec, _ = inversion.invert(fn, x[:2], 'conv', jax.random.key(4), R.Settings(steps=120))
  assert dist(rec) < 0.5 * dist(start)
  car, hist = inversion.caricature(fn, x[:2], 'conv2', jax.random.key(5), R.Settings(steps=40))
  dot = lambda imgs: np.asarray(inversion.layer_dot('conv2', fn(x[:2])[1]['conv2'])(
      imgs, *fn(imgs)))
  assert np.all(dot(car) > dot(x[:2]))


def test_dataset_examples_match_a_direct_ranking():
  m = Linear()
  v = m.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  fn = nets.bind(m, v)
  imgs = np.asarray(jax.random.uniform(jax.random.key(1), (37, 8, 8, 3)))
  top = dataset_examples.top_k(fn, imgs, 'logits', np.array([0, 2]), k=3, batch_size=16)
  scores = np.asarray(m.apply(v, imgs))
  for j, u in enumerate([0, 2]):
    np.testing.assert_array_equal(top['index'][j], np.argsort(-scores[:, u])[:3])
    np.testing.assert_allclose(top['score'][j], np.sort(scores[:, u])[::-1][:3], rtol=1e-5)


def test_cli_on_the_face_network(tmp_path):
  env = child_env(JAX_PLATFORMS='cpu')
  res = subprocess.run(
      [sys.executable, '-m', 'gradejax.featurevis', '--workdir', str(tmp_path), '--net', 'face',
       '--layer', 'level1', '--units', '3,7', '--steps', '3', '--batch', '2'],
      env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert res.returncode == 0, res.stderr[-3000:]
  page = (tmp_path / 'featurevis' / 'index.html').read_text()
  assert 'level1' in page and page.count('data:image/png;base64,') == 2  # one figure per unit
  assert (tmp_path / 'featurevis' / 'unit_0003.png').is_file()
  bad = subprocess.run(
      [sys.executable, '-m', 'gradejax.featurevis', '--workdir', str(tmp_path), '--net', 'face',
       '--layer', 'nope', '--steps', '1'], env=env, capture_output=True, text=True, timeout=600,
      cwd=ROOT)
  assert bad.returncode != 0 and "'nope' is not a tap" in bad.stderr


def test_sharded_render_compiles_once_per_batch_size_and_uses_each_batchs_units(conv):
  fn, _ = conv
  traces = []

  def objective_for(u):
    traces.append(1)  # runs only while tracing
    return O.channel_batch('conv2', u)

  par, s = P.fourier(24, 24), R.Settings(steps=6, robustness=T.Robustness(pad=2, jitter=2))
  first, h1 = R.render_sharded(fn, objective_for, par, np.array([0, 1, 2]), jax.random.key(3), s)
  second, h2 = R.render_sharded(fn, objective_for, par, np.array([5, 6, 7]), jax.random.key(3), s)
  assert len(traces) == 1
  # A fresh closure forces a new trace with units 5..7: the reused program must agree with it.
  fresh, h3 = R.render_sharded(fn, lambda u: O.channel_batch('conv2', u), par,
                               np.array([5, 6, 7]), jax.random.key(3), s)
  np.testing.assert_allclose(np.asarray(second), np.asarray(fresh), atol=1e-6)
  np.testing.assert_allclose(np.asarray(h2), np.asarray(h3), rtol=1e-5, atol=1e-6)
  assert not np.allclose(np.asarray(h1), np.asarray(h2))


def test_interpolation_with_a_shared_component_moves_from_unit_a_to_unit_b(conv):
  fn, _ = conv
  a, b = O.channel('conv', 1), O.channel('conv', 5)
  par = P.shared(P.fourier(24, 24), weight=0.5)
  imgs, params, hist = R.render(fn, O.interpolate(a, b, 4), par, 4, jax.random.key(7),
                                R.Settings(steps=60, learning_rate=0.05))
  assert params['common'].shape[0] == 1 and params['own'].shape[0] == 4
  hist = np.asarray(hist)
  assert hist[-4:].mean() > hist[:4].mean()
  out, acts = fn(imgs)
  sa, sb = np.asarray(a(imgs, out, acts)), np.asarray(b(imgs, out, acts))
  assert sa[0] > sa[-1] and sb[-1] > sb[0], (sa, sb)


def test_blur_and_priors():
  checker = jnp.asarray((np.indices((16, 16)).sum(0) % 2)[None, :, :, None] * np.ones(3),
                        jnp.float32)
  np.testing.assert_array_equal(G.blur(checker, 0.0), checker)
  blurred = G.blur(checker, 1.0)
  assert blurred.shape == checker.shape
  assert float(blurred.std()) < 0.2 * float(checker.std())  # high frequencies removed
  np.testing.assert_allclose(float(blurred.mean()), float(checker.mean()), atol=0.02)
  np.testing.assert_allclose(G.blur(jnp.full((1, 9, 9, 3), 0.3), 2.0), 0.3, atol=1e-6)
  # Hand-derived TV: a vertical step of height 1 between two columns of a 4x4 image gives
  # mean |dx| = 4 / (4 * 3) per channel and no |dy|.
  step = jnp.zeros((1, 4, 4, 3)).at[:, :, 2:].set(1.0)
  np.testing.assert_allclose(G.total_variation_of(step), [1 / 3], rtol=1e-6)


def test_total_variation_prior_and_gradient_blur_smooth_the_result(conv):
  fn, _ = conv
  s = R.Settings(steps=60, learning_rate=0.05)
  obj = O.channel('conv', 1)
  tv = lambda x: float(G.total_variation_of(x).mean())
  plain = R.render(fn, obj, P.pixel(24, 24), 2, jax.random.key(0), s)[0]
  prior = R.render(fn, obj - 2.0 * G.total_variation(), P.pixel(24, 24), 2, jax.random.key(0),
                   s)[0]
  blurred, _, hist = R.render(fn, obj, P.pixel(24, 24), 2, jax.random.key(0),
                              R.Settings(steps=60, learning_rate=0.05, grad_blur=1.0))
  assert tv(prior) < tv(plain) and tv(blurred) < tv(plain)
  assert np.asarray(hist)[-4:].mean() > np.asarray(hist)[:4].mean()
  with pytest.raises(ValueError, match='grad_blur needs pixel'):
    R.render(fn, obj, P.fourier(24, 24), 2, jax.random.key(0),
             R.Settings(steps=2, grad_blur=1.0))


def test_dataset_example_positions_and_crops(conv):
  fn, _ = conv
  imgs = np.asarray(jax.random.uniform(jax.random.key(8), (9, 24, 24, 3)))
  top = dataset_examples.top_k(fn, imgs, 'conv', np.array([1, 5]), k=2, batch_size=4)
  a = np.asarray(fn(jnp.asarray(imgs))[1]['conv'])
  for j, u in enumerate([1, 5]):
    for r, i in enumerate(top['index'][j]):
      row, col = np.unravel_index(a[i, :, :, u].argmax(), (24, 24))
      np.testing.assert_allclose(top['position'][j, r], [row + 0.5, col + 0.5])
  img = np.arange(24 * 24 * 3).reshape(24, 24, 3)
  np.testing.assert_array_equal(dataset_examples.crop(img, (12, 12), 8), img[8:16, 8:16])
  np.testing.assert_array_equal(dataset_examples.crop(img, (0, 23), 8), img[0:8, 16:24])


def test_page_puts_dataset_examples_beside_each_unit(tmp_path):
  from PIL import Image

  from gradejax.report import featurevis_page as page
  rng = np.random.default_rng(0)
  synth = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
  data = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
  top = {'index': np.array([[4, 0, 2], [1, 3, 0]]),
         'position': np.full((2, 3, 2), 16.0), 'score': np.ones((2, 3))}
  history = rng.normal(size=(10, 2))
  out = page.write(tmp_path, 'fv', 'conv', np.array([3, 7]), synth, history, ['settings'],
                   data, top, crop=16)
  html = out.read_text()
  assert html.count('data:image/png;base64,') == 2
  for v in (history[0, 1], history[-1, 1]):  # the objective table, as report.py prints it
    assert f'<td>{v:.3f}</td>' in html
  one = np.asarray(Image.open(tmp_path / 'unit_0007.png'))
  grid = np.asarray(Image.open(tmp_path / 'grid.png'))
  assert one.shape[1] > 3 * grid.shape[1] // 2  # 1 synthesised + 3 examples vs 2 panels
  assert grid.shape[0] < 3 * one.shape[0] // 2  # the 2 units side by side, not a column


def test_accentuation_raises_the_unit_and_the_keep_term_holds_it_near_the_photo(conv):
  fn, x = conv
  units = [1, 2]
  unit = lambda imgs: np.asarray(O.channel_batch('logits', units)(imgs, *fn(imgs)))
  dist = lambda imgs: np.asarray(inversion.representation_distance(
      'pre', fn(x[:2])[1]['pre'])(imgs, *fn(imgs)))
  s = R.Settings(steps=40, learning_rate=0.1, robustness=T.Robustness(0, 0, (1.0, 1.0), 0.0))
  free, _ = inversion.accentuate(fn, x[:2], 'logits', units, jax.random.key(0), s,
                                 keep_layer=None)
  kept, hist = inversion.accentuate(fn, x[:2], 'logits', units, jax.random.key(0), s,
                                    keep_layer='pre', keep_weight=20.0)
  assert hist.shape == (40, 2) and np.all(hist[-1] > hist[0])
  assert np.all(unit(free) > unit(x[:2])) and np.all(unit(kept) > unit(x[:2]))
  # The distance term is what keeps the photo: without it the image drifts further.
  assert np.all(dist(kept) < 0.5 * dist(free))
  assert np.all(unit(free) >= unit(kept))


def test_page_names_units_by_class_and_shows_curves_and_accentuations(tmp_path):
  from gradejax.featurevis import unit_names
  from gradejax.report import featurevis_page as page
  rng = np.random.default_rng(0)
  synth = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
  names = unit_names('logits', np.array([0, 1]), ['low', 'high'])
  assert names == ['low (logit 0)', 'high (logit 1)']
  assert unit_names('conv', np.array([3]), ['low', 'high']) == ['unit 3']
  chips = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
  accents = {'original': chips, 'accentuated': np.clip(chips + 0.1, 0, 1),
             'caricature': chips[::-1], 'history': rng.normal(size=(6, 2)),
             'before': np.array([0.5, 1.5]), 'after': np.array([2.5, 3.5]), 'note': 'n'}
  history = np.cumsum(rng.uniform(size=(10, 2)), 0)
  out = page.write(tmp_path, 'fv', 'logits', np.array([0, 1]), synth, history, ['s'],
                   names=names, accents=accents)
  text = out.read_text()
  assert '<figcaption>high (logit 1)</figcaption>' in text and 'unit 1<' not in text
  assert text.count('<svg') == 2  # the objective curves and the accentuation curves
  assert text.count('data:image/png;base64,') == 4  # 2 units + 2 accentuation rows
  assert '<td>2.500</td>' in text and (tmp_path / 'accent_0001.png').is_file()
  # The curve is the history: its path's y pixel coordinates fall as the objective rises.
  import xml.etree.ElementTree as ET
  svg = ET.fromstring(text[text.index('<svg'):text.index('</svg>') + 6])
  path = next(p for p in svg.iter('{http://www.w3.org/2000/svg}path')
              if p.get('class') == 'curve')
  ys = [float(pt.split(',')[1]) for pt in path.get('d')[1:].split(' L')]
  assert len(ys) == 10 and np.all(np.diff(ys) < 0)


@pytest.mark.parametrize('sharded', [False, True], ids=['render', 'render_sharded'])
def test_host_loop_computes_the_same_steps_as_the_compiled_scan(conv, monkeypatch, sharded):
  # On CPU the steps run as a host loop over one compiled step (a backward pass inside a
  # while loop is ~4x slower there); it must be the scan's optimisation, step for step:
  # same images, same objective history (random jitter drawn per step index included).
  fn, _ = conv
  s = R.Settings(steps=5, learning_rate=0.05, robustness=T.Robustness(pad=2, jitter=2))
  par = P.fourier(24, 24)

  def once(host):
    monkeypatch.setattr(R, 'host_loop', lambda: host)
    if sharded:
      img, hist = R.render_sharded(fn, lambda u: O.channel_batch('conv2', u), par,
                                   np.array([1, 4]), jax.random.key(2), s)
    else:
      img, _, hist = R.render(fn, O.channel('conv2', 3), par, 2, jax.random.key(2), s)
    return np.asarray(img), np.asarray(hist)

  (a, ha), (b, hb) = once(True), once(False)
  assert ha.shape == hb.shape == (5, 2)
  np.testing.assert_allclose(a, b, atol=1e-6)
  np.testing.assert_allclose(ha, hb, rtol=1e-5, atol=1e-6)
  assert np.abs(np.diff(ha, axis=0)).max() > 1e-4  # the steps moved the objective


@pytest.mark.parametrize('committed', [False, True], ids=['init', 'checkpoint'])
def test_host_loop_compiles_one_step_for_a_render(conv, monkeypatch, committed):
  # The first step's inputs are placed as every later step's are: one compiled step, not two,
  # for a network from module.init (uncommitted arrays) or from a checkpoint (committed).
  fn, _ = conv
  if committed:
    fn = jax.device_put(fn, jax.devices()[0])
    assert all(a.committed for a in jax.tree.leaves(fn))
  monkeypatch.setattr(R, 'host_loop', lambda: True)
  names = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda e, d, fun_name='?', **kw: names.append(fun_name) if 'backend_compile' in e else None)
  s = R.Settings(steps=3, learning_rate=0.05, robustness=T.Robustness(pad=2, jitter=2))
  R.render(fn, O.channel('conv2', 2), P.pixel(24, 24), 2, jax.random.key(5), s)
  assert names.count('jit(_step)') == 1, names
