"""FaceResNet + extractor against dlib's own descriptors on real, perturbed and random chips.

Parity is measured in float32 with every convolution and matmul at full precision: the module is
built with ``precision='highest'`` and the forward runs inside
``jax.default_matmul_precision('highest')`` (on CPU that is what XLA does anyway; on GPU/TPU the
default would use TF32/bf16 passes and miss 1e-5). Our network runs the whole set as ONE batch;
dlib runs chip by chip through ``face_recognition_model_v1.compute_face_descriptor``.

Real faces shipped in installed packages: scikit-image's ``astronaut`` (Eileen Collins, 512x512
colour) and ``lfw_subset`` (25x25 grey crops from Labeled Faces in the Wild, upscaled to 200 px
so dlib's HOG detector finds them). Only the astronaut has several photos of one person (re-crops
of the one photo at other scales / shifts / mirrored), so same-person pairs are those; the LFW
identities are unknown (LFW repeats people), so they are used only as "not the astronaut".
"""
import logging

import dlib
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import skimage.data
import skimage.transform

from gradejax.nets import extractor, facenet
from gradejax import nets, paths

N_LFW = 15


def _chip(det, sp, img: np.ndarray, upsample: int = 1) -> np.ndarray | None:
  """dlib pipeline: HOG detection (highest score), 5 landmarks, 150 px chip with padding 0.25."""
  img = np.ascontiguousarray(img)
  dets, scores, _ = det.run(img, upsample, 0.0)
  if not len(dets):
    return None
  shape = sp(img, dets[int(np.argmax(scores))])
  return dlib.get_face_chip(img, shape, 150, 0.25)


@pytest.fixture(scope='module')
def chips() -> dict[str, np.ndarray]:
  """name -> uint8 [150,150,3] chip: real aligned faces, perturbed chips and random chips."""
  det = dlib.get_frontal_face_detector()
  sp = dlib.shape_predictor(str(paths.dlib_model(paths.SHAPE_PREDICTOR_5)))
  astro = skimage.data.astronaut()
  out = {'astro': _chip(det, sp, astro)}
  for s in (0.5, 0.7, 1.3):
    img = (skimage.transform.rescale(astro, s, channel_axis=-1, order=1) * 255).astype(np.uint8)
    out[f'astro_rescaled{s}'] = _chip(det, sp, img)
  # Integer shifts alone give a bit-identical chip (alignment undoes them): shift and rescale.
  shifted = skimage.transform.rescale(astro[37:, 23:], 0.85, channel_axis=-1, order=1)
  out['astro_shifted_rescaled'] = _chip(det, sp, (shifted * 255).astype(np.uint8))
  out['astro_mirrored'] = _chip(det, sp, astro[:, ::-1])
  lfw = skimage.data.lfw_subset()[:100]  # the first 100 are faces
  for i, face in enumerate(lfw):
    grey = (skimage.transform.resize(face, (200, 200), order=3) * 255).clip(0, 255)
    chip = _chip(det, sp, np.repeat(grey.astype(np.uint8)[..., None], 3, -1), upsample=0)
    if chip is not None:
      out[f'lfw{i}'] = chip
    if sum(k.startswith('lfw') for k in out) == N_LFW:
      break
  assert all(c is not None and c.shape == (150, 150, 3) for c in out.values())
  rng = np.random.default_rng(0)
  a = out['astro'].astype(np.float32)
  clip = lambda x: np.clip(np.round(x), 0, 255).astype(np.uint8)
  out['astro_noise'] = clip(a + rng.normal(0, 8, a.shape))
  out['astro_brighter'] = clip(a * 1.3)
  out['astro_darker'] = clip(a - 40)
  out['astro_low_contrast'] = clip((a - 128) * 0.6 + 128)
  out['astro_chip_flipped'] = out['astro'][:, ::-1].copy()
  out['astro_chip_rolled'] = np.roll(out['astro'], (3, -4), (0, 1))
  for i in range(3):
    out[f'random{i}'] = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
  out['grey'] = np.full((150, 150, 3), 128, np.uint8)
  return out


@pytest.fixture(scope='module')
def dlib_descriptors(chips) -> np.ndarray:
  model = dlib.face_recognition_model_v1(str(paths.dlib_model(paths.FACE_RECOGNITION)))
  return np.array([model.compute_face_descriptor(c) for c in chips.values()], np.float64)


@pytest.fixture(scope='module')
def loaded(tmp_path_factory):
  return extractor.load_face_resnet(cache_dir=tmp_path_factory.mktemp('cache'),
                                    precision='highest')


@pytest.fixture(scope='module')
def ours(loaded, chips) -> np.ndarray:
  module, variables = loaded
  batch = np.stack(list(chips.values())).astype(np.float32) / 255.0
  with jax.default_matmul_precision('highest'):
    return np.asarray(jax.jit(module.apply)(variables, batch))


def test_parity_with_dlib(chips, ours, dlib_descriptors):
  assert len(chips) >= 20 and sum(k.startswith('lfw') for k in chips) == N_LFW
  assert ours.shape == (len(chips), 128) and ours.dtype == np.float32
  err = np.abs(ours - dlib_descriptors).max(axis=1)
  assert err.max() <= 1e-5, dict(zip(chips, err))
  # dlib does not normalise descriptors; ours must not either.
  np.testing.assert_allclose(np.linalg.norm(ours, axis=1),
                             np.linalg.norm(dlib_descriptors, axis=1), atol=2e-5)
  assert not np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=0.05)


def test_embed_pads_last_batch_and_accepts_uint8(loaded, chips, ours):
  module, variables = loaded
  names = ['astro', 'random0', next(k for k in chips if k.startswith('lfw'))]
  idx = [list(chips).index(n) for n in names]
  uint8 = np.stack([chips[n] for n in names])  # 3 chips, batch 2 -> one padded batch
  with jax.default_matmul_precision('highest'):
    got = extractor.embed(module, variables, uint8, batch_size=2)
  assert got.shape == (3, 128)
  np.testing.assert_allclose(got, ours[idx], atol=2e-6)
  assert extractor.embed(module, variables, uint8[:0], batch_size=2).shape == (0, 128)


def test_face_verification(chips, ours):
  d = dict(zip(chips, ours))
  dist = lambda a, b: float(np.linalg.norm(d[a] - d[b]))
  same = [k for k in chips if k.startswith('astro') and k != 'astro']
  for k in same:  # re-crops and mild perturbations of the one photo of Eileen Collins
    assert dist('astro', k) < 0.6, (k, dist('astro', k))
  others = [k for k in chips if k.startswith(('lfw', 'random', 'grey'))]
  for k in others:
    assert dist('astro', k) > 0.6, (k, dist('astro', k))


def test_taps_follow_the_contract(loaded, chips, ours):
  module, variables = loaded
  fn = nets.bind(module, variables)
  x = chips['astro'][None].astype(np.float32) / 255
  shapes = nets.activation_shapes(fn, x)
  levels = {'level4': (3, 35, 32), 'level3': (4, 17, 64), 'level2': (3, 8, 128),
            'level1': (3, 4, 256), 'level0': (1, 2, 256)}
  want = {'stem': (1, 35, 35, 32), 'pooled': (1, 256), 'descriptor': (1, 128)}
  for name, (blocks, hw, c) in levels.items():
    want[name] = (1, hw, hw, c)
    want.update({f'{name}/block{b}': (1, hw, hw, c) for b in range(blocks)})
  assert shapes == want
  with jax.default_matmul_precision('highest'):
    out, acts = fn(x)
  np.testing.assert_allclose(acts['descriptor'], out)
  np.testing.assert_allclose(out[0], ours[0], atol=2e-6)
  np.testing.assert_array_equal(acts['level3'], acts['level3/block3'])
  np.testing.assert_allclose(acts['pooled'], acts['level0'].mean(axis=(1, 2)), rtol=1e-6)
  # The relu argument is used at every ReLU: identity "relu" changes every stage's output.
  _, lin = fn(x, relu=lambda t: t)
  assert not np.allclose(lin['stem'], acts['stem']) and (lin['stem'] < 0).any()
  assert (acts['stem'] >= 0).all()


def test_perturbation_gives_activation_gradient(loaded, chips):
  # Flax-level perturbations at a tap: d(loss)/d(perturbation) = d(loss)/d(activation).
  module, variables = loaded
  x = chips['astro'][None].astype(np.float32) / 255
  zeros = nets.zero_perturbations_like(module, variables, x)
  pert = {k: v for k, v in zeros.items()}

  def loss(p):
    return module.apply({'params': variables['params'], 'perturbations': p}, x)[0, 0]

  g = jax.jit(jax.grad(loss))(pert)
  w = variables['params']['fc']['kernel'][:, 0]
  np.testing.assert_allclose(g['pooled'][0], w, rtol=1e-5)
  assert float(jnp.abs(g['level2/block1']).sum()) > 0


def test_bind_with_perturbations(loaded, chips):
  # A perturbation d at 'pooled' moves the descriptor by d @ W (the fc has no bias), and the
  # level taps ('level3' beside 'level3/block0') are all reachable by name.
  module, variables = loaded
  fn = nets.bind(module, variables)
  x = chips['astro'][None].astype(np.float32) / 255
  base, acts = fn(x)
  assert {'level3', 'level3/block0', 'pooled'} <= set(acts)
  d = jnp.zeros((1, 256)).at[0, 7].set(0.5)
  out, _ = fn(x, perturbations={'pooled': d})
  w = variables['params']['fc']['kernel']
  np.testing.assert_allclose(out - base, 0.5 * w[7][None], atol=1e-5)
  with pytest.raises(KeyError, match='No tap named'):
    fn(x, perturbations={'nope': d})


@pytest.mark.parametrize('shape,dtype,match', [
    ((150, 150, 3), np.float32, r'images \[B, 150, 150, 3\].*got shape \(150, 150, 3\)'),
    ((2, 112, 112, 3), np.float32, r'got shape \(2, 112, 112, 3\)'),
    ((2, 150, 150, 1), np.float32, r'got shape \(2, 150, 150, 1\)'),
    ((2, 3, 150, 150), np.float32, r'NHWC'),
    ((2, 150, 150, 3), np.float64, r'float32 images in \[0, 1\] or uint8.*got float64'),
    ((2, 150, 150, 3), np.int32, r'got int32'),
])
def test_bad_input(loaded, shape, dtype, match):
  module, variables = loaded
  with pytest.raises(ValueError, match=match):
    module.apply(variables, np.zeros(shape, dtype))


def test_freeze_partition_keeps_frozen_params_out_of_the_optimiser(loaded, chips):
  module, variables = loaded
  params = variables['params']
  trainable, frozen = extractor.freeze_partition(params, ('fc', 'level0/block0'))
  assert set(trainable) == {'fc', 'level0'} and 'fc' not in frozen and 'level0' not in frozen
  assert jax.tree.structure(extractor.merge(trainable, frozen)) == jax.tree.structure(params)
  tx = optax.adam(1e-3)
  state = tx.init(trainable)
  n_state = sum(l.size for l in jax.tree.leaves(state))
  n_train = sum(l.size for l in jax.tree.leaves(trainable))
  assert n_train == 128 * 256 + sum(l.size for l in jax.tree.leaves(params['level0']))
  assert n_state == 2 * n_train + 1  # adam mu, nu (+ count): nothing for the frozen 4.9 M params
  # Fully frozen: an optimiser over nothing, yet the image gradient flows through the net.
  none, everything = extractor.freeze_partition(params)
  assert jax.tree.leaves(tx.init(none)) == [jnp.zeros([], jnp.int32)]
  x = jnp.asarray(chips['astro'][None].astype(np.float32) / 255)

  def loss(train, image):
    return jnp.sum(module.apply({'params': extractor.merge(train, frozen)}, image) ** 2)

  g_train, g_image = jax.jit(jax.grad(loss, argnums=(0, 1)))(trainable, x)
  assert jax.tree.structure(g_train) == jax.tree.structure(trainable)
  assert float(jnp.abs(g_image).max()) > 0 and g_image.shape == x.shape
  with pytest.raises(ValueError, match=r"no params under \['level9'\]"):
    extractor.freeze_partition(params, ('level9',))


def test_cache(tmp_path, caplog, monkeypatch):
  caplog.set_level(logging.INFO)
  m1, v1 = extractor.load_face_resnet(cache_dir=tmp_path)
  file = extractor.cache_path(paths.dlib_model(paths.FACE_RECOGNITION), tmp_path)
  assert file.is_file() and 'converted from' in caplog.text
  caplog.clear()
  monkeypatch.setenv('GRADEJAX_CACHE', str(tmp_path))  # the env var picks the same folder
  m2, v2 = extractor.load_face_resnet()
  assert f'from cache {file}' in caplog.text and 'converted' not in caplog.text
  assert m1 == m2 and m1.input_means == facenet.DLIB_INPUT_MEANS
  assert jax.tree.structure(v1) == jax.tree.structure(v2)
  for a, b in zip(jax.tree.leaves(v1), jax.tree.leaves(v2)):
    np.testing.assert_array_equal(a, b)
  # A corrupt cache is rebuilt, not trusted.
  file.write_bytes(b'garbage')
  caplog.clear()
  _, v3 = extractor.load_face_resnet(cache_dir=tmp_path)
  assert 'unreadable' in caplog.text and 'converted from' in caplog.text
  np.testing.assert_array_equal(v3['params']['fc']['kernel'], v1['params']['fc']['kernel'])


@pytest.mark.parametrize('k,stride,side', [(3, 2, 72), (3, 2, 9), (2, 2, 8)])
def test_max_pool_gradient_is_reduce_windows_also_with_ties(k, stride, side):
  """facenet.max_pool's custom gradient (faster on a CPU) is reduce_window's own: each window's
  gradient to its first maximal input (row-major), ties included (ReLU zeros, rounded values)."""
  from jax import lax
  rs = np.random.RandomState(0)
  for x in (rs.randn(2, side, side, 3), np.round(rs.rand(2, side, side, 3) * 3) / 3,
            np.maximum(rs.randn(2, side, side, 3), 0)):
    x = jnp.asarray(x, jnp.float32)
    ref = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, stride, stride, 1),
                                      'VALID')
    y = ref(x)
    w = jnp.asarray(rs.randn(*y.shape), jnp.float32)
    np.testing.assert_array_equal(facenet.max_pool(x, k, stride), y)
    want = jax.grad(lambda x: jnp.sum(ref(x) * w))(x)
    got = jax.grad(lambda x: jnp.sum(facenet.max_pool(x, k, stride) * w))(x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize('side,k', [(150, 7), (31, 7), (30, 3), (17, 3)])
def test_strided_conv_equals_the_unpadded_convolution(side, k):
  """conv's strided path (padded then cropped; space to depth for few channels) computes
  lax's unpadded strided convolution: values and input gradients."""
  from jax import lax
  rs = np.random.RandomState(1)
  for c in (3, 16):
    x = jnp.asarray(rs.rand(2, side, side, c), jnp.float32)
    p = {'kernel': jnp.asarray(rs.randn(k, k, c, 8), jnp.float32),
         'bias': jnp.asarray(rs.randn(8), jnp.float32)}
    ref = lambda x: lax.conv_general_dilated(x, p['kernel'], (2, 2), 'VALID', dimension_numbers=(
        'NHWC', 'HWIO', 'NHWC'), precision='highest') + p['bias']
    got = facenet.conv(x, p, 2, 'highest')
    assert got.shape == ref(x).shape
    scale = float(jnp.abs(ref(x)).max())
    np.testing.assert_allclose(got, ref(x), rtol=0, atol=2e-6 * scale)
    w = jnp.asarray(rs.randn(*got.shape), jnp.float32)
    g_ref = jax.grad(lambda x: jnp.sum(ref(x) * w))(x)
    g = jax.grad(lambda x: jnp.sum(facenet.conv(x, p, 2, 'highest') * w))(x)
    np.testing.assert_allclose(g, g_ref, rtol=0, atol=2e-6 * float(jnp.abs(g_ref).max()))
