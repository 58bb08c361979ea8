"""Attribution methods against analytic answers on toy networks that follow gradejax.nets.

Toy nets: a linear model (every gradient method has a closed form), a small random ReLU conv
net (completeness of IG, summation to delta of DeepLIFT), a hand-set 1x1-conv ReLU net (guided
backprop and deconvnet worked out by hand below) and a GAP + linear conv net (Grad-CAM = CAM).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradejax import attribution as attr
from gradejax import nets
from gradejax.attribution import class_activation, registry
import toy_nets
from toy_nets import LinearNet, ReluConvNet

H = W = 8


def _bind(module, shape=(2, H, W, 3), seed=0):
  return toy_nets.bind(module, shape, seed)


@pytest.fixture(scope='module')
def images():
  return jax.random.uniform(jax.random.key(1), (2, H, W, 3))


@pytest.fixture(scope='module')
def linear(images):
  fn, variables = _bind(LinearNet())
  return fn, np.asarray(variables['params']['w'])


@pytest.fixture(scope='module')
def relu_net():
  return _bind(ReluConvNet())[0]


TARGETS = np.array([2, 0])


def _per_image_w(w, targets):
  return np.stack([w[..., k] for k in targets])  # [B, H, W, C]


def test_linear_saliency_is_weights(images, linear):
  fn, w = linear
  np.testing.assert_allclose(attr.saliency(fn, images, TARGETS), _per_image_w(w, TARGETS),
                             rtol=1e-6)
  # A scalar target explains the same unit for every image.
  np.testing.assert_allclose(attr.saliency(fn, images, 1), _per_image_w(w, [1, 1]), rtol=1e-6)


def test_linear_gradient_x_input_ig_deeplift_smoothgrad(images, linear):
  fn, w = linear
  wk = _per_image_w(w, TARGETS)
  x = np.asarray(images)
  baseline = np.asarray(jax.random.uniform(jax.random.key(2), (H, W, 3)))
  np.testing.assert_allclose(attr.gradient_x_input(fn, images, TARGETS), x * wk, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(attr.integrated_gradients(fn, images, TARGETS, baseline, steps=5,
                                                       chunk=2),
                             (x - baseline) * wk, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(attr.deeplift_rescale(fn, images, TARGETS, baseline),
                             (x - baseline) * wk, rtol=1e-5, atol=1e-6)
  # The gradient of a linear model is the same at every noisy copy.
  np.testing.assert_allclose(attr.smoothgrad(fn, images, TARGETS, jax.random.key(3),
                                             n_samples=5, chunk=2), wk, rtol=1e-5)


class CubicNet(nn.Module):
  """outputs[b, k] = sum_{h,w,c} c[h,w,c,k] x[b,h,w,c]^3: the gradient 3 c x^2 depends on x, so
  SmoothGrad's noise shows: over the noise eps ~ N(0, sigma^2), E[3 c (x + eps)^2] =
  3 c (x^2 + sigma^2)."""
  classes: int = 3

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    del relu
    c = self.param('c', nn.initializers.normal(1.0), images.shape[1:] + (self.classes,))
    x = nets.tap(self, 'input', images)
    return nets.tap(self, 'logits', jnp.einsum('bhwc,hwck->bk', x ** 3, c))


def test_smoothgrad_noise_is_scaled_by_the_image_range(images):
  fn, variables = _bind(CubicNet())
  ck = _per_image_w(np.asarray(variables['params']['c'], np.float64), TARGETS)
  x = np.asarray(images, np.float64)
  x = x * np.array([1.0, 3.0])[:, None, None, None]  # image 1 spans 3x image 0's range
  span = x.max(axis=(1, 2, 3), keepdims=True) - x.min(axis=(1, 2, 3), keepdims=True)
  sigma = 0.2 * span
  key, n = jax.random.key(5), 6
  got = np.asarray(attr.smoothgrad(fn, jnp.asarray(x, jnp.float32), TARGETS, key,
                                   noise_level=0.2, n_samples=n, chunk=4))
  # Sample i's noise is normal(fold_in(key, i)) (the documented scheme); the mean gradient of
  # the cubic, worked out by hand in float64:
  eps = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(key, i), x.shape))
                  for i in range(n)])
  want = np.mean(3 * ck[None] * (x[None] + sigma[None] * eps) ** 2, axis=0)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  # Many samples: the expectation 3 c (x^2 + sigma^2), within Monte Carlo error (a sigma off
  # by 10% moves the mean by ~0.2 sigma^2 |3c|, far above the tolerance used here).
  many = np.asarray(attr.smoothgrad(fn, jnp.asarray(x, jnp.float32), TARGETS, key,
                                    noise_level=0.2, n_samples=4096, chunk=4096))
  expect = 3 * ck * (x ** 2 + sigma ** 2)
  mc_sd = 3 * np.abs(ck) * np.sqrt(4 * x ** 2 * sigma ** 2 + 2 * sigma ** 4) / np.sqrt(4096)
  assert np.all(np.abs(many - expect) < 5 * mc_sd + 1e-5)


def test_linear_occlusion_is_patch_sums(images, linear):
  fn, w = linear
  wx = _per_image_w(w, TARGETS) * np.asarray(images)
  patch, stride = 3, 2
  grid = np.asarray(attr.occlusion_grid(fn, images, TARGETS, patch=patch, stride=stride,
                                        fill=0.0, chunk=4))
  ny = (H - patch) // stride + 1
  assert grid.shape == (2, ny, ny)
  for i in range(ny):
    for j in range(ny):
      win = wx[:, i * stride:i * stride + patch, j * stride:j * stride + patch]
      np.testing.assert_allclose(grid[:, i, j], win.sum(axis=(1, 2, 3)), rtol=1e-4, atol=1e-5)
  # A grey occluder (fill 0.5, the default of the library and of the report) replaces x by 0.5:
  # drop = sum w (x - 0.5); an array fill [H, W, C] replaces each pixel by its own value.
  wk = _per_image_w(w, TARGETS)
  x = np.asarray(images)
  fill_img = np.asarray(jax.random.uniform(jax.random.key(7), (H, W, 3)))
  assert attr.occlusion_sensitivity.DEFAULT_FILL == 0.5
  for fill, occluder in ((None, np.full((H, W, 3), 0.5)), (fill_img, fill_img)):
    kw = {} if fill is None else {'fill': fill}  # None: the default fill
    grey = np.asarray(attr.occlusion_grid(fn, images, TARGETS, patch=patch, stride=stride,
                                          chunk=4, **kw))
    for i in range(ny):
      for j in range(ny):
        sl = np.s_[i * stride:i * stride + patch, j * stride:j * stride + patch]
        want = (wk[(slice(None),) + sl] * (x[(slice(None),) + sl] - occluder[sl])).sum((1, 2, 3))
        np.testing.assert_allclose(grey[:, i, j], want, rtol=1e-4, atol=1e-5)
  # Non-overlapping patches: every pixel of a patch gets that patch's drop.
  pix = np.asarray(attr.occlusion(fn, images, TARGETS, patch=4, stride=4))
  grid4 = np.asarray(attr.occlusion_grid(fn, images, TARGETS, patch=4, stride=4))
  np.testing.assert_allclose(pix, np.kron(grid4, np.ones((4, 4))), rtol=1e-6)
  # keep=True fills everything but the square (the preservation game over squares): the drop
  # at (i, j) is the sum of w x over the pixels outside that square, for every output.
  kept = np.asarray(attr.occlusion_sensitivity.occlusion_all_outputs(
      fn, images, patch=patch, stride=stride, fill=0.0, chunk=4, keep=True))
  full = np.einsum('bhwc,hwck->bk', x, w)
  for i in range(ny):
    for j in range(ny):
      sl = np.s_[i * stride:i * stride + patch, j * stride:j * stride + patch]
      inside = np.einsum('bhwc,hwck->bk', x[(slice(None),) + sl], w[sl])
      np.testing.assert_allclose(kept[:, i, j], full - inside, rtol=1e-4, atol=1e-5)


def test_linear_region_class_map(images, linear):
  fn, w = linear
  x = np.asarray(images)
  regions = np.asarray(attr.region_class_map(fn, images, patch=4, stride=4))
  for i in range(2):
    for j in range(2):
      # The default grey occluder: each class's output drops by sum w (x - 0.5) over the patch.
      win = np.einsum('bhwc,hwck->bk', x[:, 4 * i:4 * i + 4, 4 * j:4 * j + 4] - 0.5,
                      w[4 * i:4 * i + 4, 4 * j:4 * j + 4])
      np.testing.assert_array_equal(regions[:, i, j], win.argmax(-1))


def test_integrated_gradients_completeness(images):
  # Along the straight path a ReLU net is piecewise linear in alpha, so the midpoint rule errs
  # by O(kinks * jump / steps): 1e-3 at 256 steps holds for a net this small (this seed's
  # worst case is 9e-4 over its 3 classes x 2 images), and the error must shrink with steps.
  fn, _ = _bind(ReluConvNet(), seed=2)
  out = np.asarray(fn(images)[0])
  out0 = np.asarray(fn(jnp.zeros_like(images))[0])
  delta = out[[0, 1], TARGETS] - out0[[0, 1], TARGETS]
  errors = {}
  for steps in (16, 256):
    ig = np.asarray(attr.integrated_gradients(fn, images, TARGETS, steps=steps, chunk=64))
    errors[steps] = np.abs(ig.sum(axis=(1, 2, 3)) - delta) / np.abs(delta)
  assert errors[256].max() < 1e-3, errors
  assert errors[256].max() < errors[16].max() / 4, errors


def test_deeplift_summation_to_delta(images, relu_net):
  fn = relu_net
  reference = jax.random.uniform(jax.random.key(4), images.shape)
  out = np.asarray(fn(images)[0])
  ref = np.asarray(fn(reference)[0])
  dl = np.asarray(attr.deeplift_rescale(fn, images, TARGETS, reference))
  delta = out[[0, 1], TARGETS] - ref[[0, 1], TARGETS]
  np.testing.assert_allclose(dl.sum(axis=(1, 2, 3)), delta, rtol=1e-5, atol=1e-6)
  # It is not the gradient x delta of either end: the multipliers really differ.
  gx = np.asarray(attr.saliency(fn, images, TARGETS)) * np.asarray(images - reference)
  assert np.abs(gx.sum(axis=(1, 2, 3)) - delta).max() > 1e-3


class HandNet(nn.Module):
  """Two 1x1-conv ReLU layers and a sum over pixels, weights set by hand.

  Per pixel p with colour (R, G, B):
    z1 = (R - G, G - B),  h1 = relu(z1)
    z2 = (h1_0 - h1_1, h1_1),  h2 = relu(z2)
    y = sum_p (h2_0 - 0.5 h2_1)
  """

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    w1 = jnp.array([[1., 0.], [-1., 1.], [0., -1.]])  # [C_in=3, C_out=2]
    w2 = jnp.array([[1., 0.], [-1., 1.]])
    h1 = nets.tap(self, 'h1', relu(jnp.einsum('bhwc,cd->bhwd', images, w1)))
    h2 = nets.tap(self, 'h2', relu(jnp.einsum('bhwc,cd->bhwd', h1, w2)))
    return jnp.sum(h2 @ jnp.array([1., -0.5]), axis=(1, 2))[:, None]


def test_guided_backprop_and_deconvnet_hand_derived():
  # 2x2 image, pixels A (0,0), B (0,1), C (1,0), D (1,1):
  #   A = (.9, .2, .1): z1 = (.7, .1)          z2 = (.6, .1)   both layers fully on
  #   B = (.2, .5, .1): z1 = (-.3, .4)         z2 = (-.4, .4)  channel 0 off in both layers
  #   C = (.6, .4, .0): z1 = (.2, .4)          z2 = (-.2, .4)  channel 0 on in layer 1 only
  #   D = (.8, .5, .4): z1 = (.3, .1)          z2 = (.2, .1)   both layers fully on
  # Backward signal at h2 is (1, -0.5) everywhere.
  # Guided: layer 2 keeps (1, 0) where z2_0 > 0 (the -0.5 is negative: dropped), else (0, 0).
  #   Through w2: (g0, -g0); layer 1 keeps only the positive g0 where z1_0 > 0: (g0, 0).
  #   Through w1: (dR, dG, dB) = (g0, -g0, 0). So A, D -> (1, -1, 0); B, C -> 0 (C is stopped
  #   by layer 2 although layer 1 would pass it: the forward mask at both layers matters).
  # Deconvnet: layer 2 passes relu(1, -0.5) = (1, 0) everywhere, through w2 (1, -1), layer 1
  #   relu -> (1, 0), through w1 -> (1, -1, 0) at every pixel, whatever the image.
  # Vanilla gradient, for contrast, at A: h2 signal (1, -.5) -> h1 (1, -1.5) -> (1, -2.5, 1.5).
  img = jnp.array([[[[.9, .2, .1], [.2, .5, .1]], [[.6, .4, .0], [.8, .5, .4]]]])
  module = HandNet()
  fn = nets.bind(module, module.init(jax.random.key(0), img))
  on, off = [1., -1., 0.], [0., 0., 0.]
  np.testing.assert_allclose(attr.guided_backprop(fn, img, 0)[0], [[on, off], [off, on]])
  np.testing.assert_allclose(attr.deconvnet(fn, img, 0)[0], [[on, on], [on, on]])
  np.testing.assert_allclose(attr.saliency(fn, img, 0)[0, 0, 0], [1., -2.5, 1.5])


def test_grad_cam_equals_cam_up_to_scale(images):
  fn, variables = _bind(ReluConvNet())
  weights = class_activation.linear_head_weights(fn, images, 'pooled', key=jax.random.key(5))
  dense = variables['params']['Dense_0']['kernel']
  np.testing.assert_allclose(weights, dense, rtol=1e-5, atol=1e-6)
  c = np.asarray(attr.cam(fn, images, TARGETS, weights, layer='features'))
  g = np.asarray(attr.grad_cam(fn, images, TARGETS, layer='features'))
  # dS/dA[h, w, c] = W[c, k] / (h w), so Grad-CAM = relu(CAM) / (h w) before upsampling, and
  # bilinear upsampling commutes with the scale (not with relu: compare at the tap's size).
  c0 = np.asarray(attr.cam(fn, images, TARGETS, weights, layer='features', upsampled=False))
  g0 = np.asarray(attr.grad_cam(fn, images, TARGETS, layer='features', upsampled=False))
  np.testing.assert_allclose(g0, np.maximum(c0, 0) / (H * W), rtol=1e-5, atol=1e-7)
  assert c.shape == g.shape == (2, H, W)
  gu = np.asarray(attr.grad_cam(fn, images, TARGETS, layer='features', rectify=False))
  np.testing.assert_allclose(gu, c / (H * W), rtol=1e-5, atol=1e-7)
  # A ReLU head is not linear: CAM refuses it.
  fn2, _ = _bind(ReluConvNet(relu_head=True))
  with pytest.raises(ValueError, match='not a linear function'):
    class_activation.linear_head_weights(fn2, images, 'pooled', key=jax.random.key(5))
  with pytest.raises(ValueError, match='no tap named'):
    attr.grad_cam(fn, images, TARGETS, layer='nope')


def test_guided_grad_cam_is_product(images, relu_net):
  gb = np.asarray(attr.guided_backprop(relu_net, images, TARGETS))
  gc = np.asarray(attr.grad_cam(relu_net, images, TARGETS, layer='features'))
  np.testing.assert_allclose(attr.guided_grad_cam(relu_net, images, TARGETS, layer='features'),
                             gb * gc[..., None], rtol=1e-5, atol=1e-8)


def test_smoothgrad_independent_of_chunking(images, relu_net):
  key = jax.random.key(6)
  a = attr.smoothgrad(relu_net, images, TARGETS, key, n_samples=6, chunk=4)
  b = attr.smoothgrad(relu_net, images, TARGETS, key, n_samples=6, chunk=6)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert not np.allclose(a, attr.saliency(relu_net, images, TARGETS), atol=1e-4)
  # Rolled and unrolled loops (the CPU default) compute the same thing.
  for f, kw in ((attr.integrated_gradients, dict(steps=6, chunk=2)),
                (attr.occlusion_grid, dict(patch=4, stride=2, chunk=3))):
    np.testing.assert_allclose(f(relu_net, images, TARGETS, unroll=1, **kw),
                               f(relu_net, images, TARGETS, unroll=True, **kw),
                               rtol=1e-5, atol=1e-7)


def test_single_chunk_runs_without_a_loop(images, relu_net):
  # JAX lowers a length-1 scan to a while loop even when unrolled; XLA on CPU ran the face
  # ResNet's gradients ~3x slower inside it, so one chunk is called directly.
  def hlo(f, **kw):
    return f.jitted.lower(relu_net, images, TARGETS, **kw).as_text()
  assert 'while' not in hlo(attr.integrated_gradients, steps=4, chunk=4, unroll=False)
  assert 'while' in hlo(attr.integrated_gradients, steps=4, chunk=2, unroll=False)
  assert 'while' not in hlo(attr.occlusion_grid, patch=4, stride=4, chunk=16, unroll=False)
  one = attr.integrated_gradients(relu_net, images, TARGETS, steps=4, chunk=4)
  two = attr.integrated_gradients(relu_net, images, TARGETS, steps=4, chunk=2, unroll=False)
  np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('name', list(registry.METHODS))
def test_jit_equals_eager(name, images, relu_net):
  kwargs = dict(layer='features', key=jax.random.key(7), n_samples=3, steps=4, patch=4,
                stride=4, n_masks=4, chunk=4, n_segments=4, patches=(4,), scales=(4,),
                base='saliency', fill=0.0)  # black: this test's maps from before 0.5 was the default
  if name == 'cam':
    kwargs['weights'] = class_activation.linear_head_weights(relu_net, images, 'pooled',
                                                             key=jax.random.key(8))
  if name == 'region_class':
    del kwargs['layer']  # occlusion source
  if name == 'extremal':  # one area, a 4 x 4 node grid: eager mode runs each op unfused
    kwargs.update(areas=(0.25,), step=2, sigma=2.0, steps=3, optimiser='torchray',
                  reward='raw')  # Adam's first steps are sign(g): rounding flips them
  kwargs = registry.options_for(name, kwargs)
  jitted = np.asarray(registry.heatmap(name, relu_net, images, TARGETS, **kwargs))
  with jax.disable_jit():
    eager = np.asarray(registry.heatmap(name, relu_net, images, TARGETS, **kwargs))
  assert jitted.shape[:3] == (2, H, W)
  np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)


def test_registry_names_what_is_missing(images, relu_net):
  with pytest.raises(ValueError, match='needs layer'):
    registry.compute('grad_cam', relu_net, images, TARGETS)
  with pytest.raises(ValueError, match='needs key'):
    registry.compute('smoothgrad', relu_net, images, TARGETS)
  with pytest.raises(ValueError, match='unknown attribution method'):
    registry.get('lime_typo')
  with pytest.raises(ValueError, match=r'shape \[2\]'):
    attr.saliency(relu_net, images, np.array([0, 1, 2]))


# --- the registry: options are the library signature's, never dropped --------------------------

def _small_options(name):
  """Options that keep every method tiny on the 8 x 8 toy images (each one the method takes)."""
  small = dict(n_samples=3, steps=4, patch=4, stride=4, n_masks=4, chunk=4, n_segments=4,
               patches=(4,), scales=(4,))
  return {k: v for k, v in small.items() if k in registry.get(name).options}


def _inputs(name, relu_net, images):
  kw = dict(key=jax.random.key(7))
  if 'layer' in registry.get(name).inputs and name != 'region_class':
    kw['layer'] = 'features'
  if name == 'cam':
    kw['weights'] = class_activation.linear_head_weights(relu_net, images, 'pooled',
                                                         key=jax.random.key(8))
  return {k: v for k, v in kw.items() if k in registry.get(name).inputs}


# The methods whose entry goes through a registry wrapper or fixes an option (the plain
# entries pass the given options straight on, so they have no way to add a default).
@pytest.mark.parametrize('name', ['region_class', 'lime', 'grad_cam'])
def test_registry_defaults_are_what_the_library_does(name, images, relu_net):
  """Calling a method with no option equals passing every default of its library signature:
  no registry wrapper keeps a default of its own (xrai is checked below, on a cheaper base)."""
  kw = dict(_inputs(name, relu_net, images), **_small_options(name))
  explicit = {k: v for k, v in registry.defaults(name).items() if k not in kw}
  assert explicit
  plain = np.asarray(registry.compute(name, relu_net, images, TARGETS, **kw))
  spelled = np.asarray(registry.compute(name, relu_net, images, TARGETS, **kw, **explicit))
  np.testing.assert_array_equal(plain, spelled)


def test_xrai_defaults_and_base_options(images, relu_net):
  assert registry.defaults('xrai')['scales'] == attr_xrai_scales()
  kw = dict(base='saliency', scales=(4,))
  plain = registry.compute('xrai', relu_net, images, TARGETS, **kw)
  spelled = registry.compute('xrai', relu_net, images, TARGETS, **kw, relu=nn.relu)
  np.testing.assert_array_equal(plain, spelled)
  with pytest.raises(ValueError, match="'saliency' takes no option 'steps'"):
    registry.compute('xrai', relu_net, images, TARGETS, base='saliency', scales=(4,), steps=4)


def attr_xrai_scales():
  from gradejax.attribution import xrai
  return xrai.SCALES


def test_library_signatures_share_one_fill_sigma_and_patch():
  """Every perturbation function defaults its fill, blur sigma and occluder to the one
  constant (fills.DEFAULT_FILL / DEFAULT_SIGMA, occlusion's DEFAULT_PATCH / DEFAULT_STRIDE)."""
  import inspect
  from gradejax.attribution import common, faithfulness, fills, regions, rise, superpixels
  from gradejax.attribution import occlusion_sensitivity as occ
  want = dict(fill=fills.DEFAULT_FILL, blur_sigma=fills.DEFAULT_SIGMA, patch=occ.DEFAULT_PATCH,
              stride=occ.DEFAULT_STRIDE)
  seen = set()
  for mod in (occ, regions, rise, superpixels, faithfulness):
    for f in vars(mod).values():
      if not callable(f) or getattr(f, '__module__', None) != mod.__name__:
        continue
      try:
        params = inspect.signature(f).parameters
      except (TypeError, ValueError):
        continue
      for k, v in want.items():
        if k in params and params[k].default is not inspect.Parameter.empty:
          assert params[k].default == v, f'{mod.__name__}.{f.__name__}: {k}={params[k].default}'
          seen.add((f.__name__, k))
  assert ('rise', 'fill') in seen and ('region_class_map', 'patch') in seen
  assert ('removal_drop', 'fill') in seen and ('segment_scores', 'blur_sigma') in seen
  # the statics of a method are its keyword-only options less the Array-annotated ones
  assert common.static_options(occ.occlusion) == (
      'patch', 'stride', 'chunk', 'unroll', 'fill_mode', 'blur_sigma', 'aggregate', 'score')


def test_unknown_options_raise_and_grad_cam_options_are_honoured(images, relu_net):
  with pytest.raises(ValueError, match=r"'grad_cam' takes no option 'patch'; its options: "
                                       r"upsampled, rectify"):
    registry.compute('grad_cam', relu_net, images, TARGETS, layer='features', patch=4)
  with pytest.raises(ValueError, match="'occlusion' takes no option 'steps'"):
    registry.compute('occlusion', relu_net, images, TARGETS, patch=4, stride=4, steps=4)
  with pytest.raises(ValueError, match="'saliency' takes no option"):
    registry.compute('saliency', relu_net, images, TARGETS, fill=0.5)
  # upsampled / rectify used to be dropped (the rectified, upsampled map came back)
  got = np.asarray(registry.compute('grad_cam', relu_net, images, TARGETS, layer='features',
                                    upsampled=False, rectify=False))
  want = np.asarray(class_activation.grad_cam(relu_net, images, TARGETS, layer='features',
                                              upsampled=False, rectify=False))
  np.testing.assert_array_equal(got, want)
  h = nets.activation_shapes(relu_net, images)['features'][1]
  assert got.shape == (2, h, h) and got.min() < 0  # coarse and signed
  # cam's `upsampled` too, and options_for keeps a method's share of a shared set
  shared = dict(layer='features', upsampled=False, patch=4, steps=3, key=jax.random.key(0))
  assert registry.options_for('grad_cam', shared) == dict(layer='features', upsampled=False,
                                                          key=shared['key'])
  assert set(registry.options_for('xrai', dict(shared, base='integrated_gradients'))) == {
      'layer', 'key', 'base', 'steps'}
