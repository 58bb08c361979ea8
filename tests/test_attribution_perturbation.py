"""Perturbation and region methods against analytic answers on toy networks.

Toy nets: a net that reads one patch only (RISE and superpixel ablation must concentrate
there), a linear model (removal and LIME with no ridge give the segment sums, KernelSHAP the
same exactly), a product-of-region-means net whose Shapley values are known in closed form
(KernelSHAP's kernel, including the re-weighting for images with fewer segments), hand-made
regions for the XRAI greedy order, and images where the fills have exact answers.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradejax import nets
from gradejax.attribution import (fills, faithfulness, localisation, registry, rise,
                                  superpixels, xrai)
from gradejax.attribution import occlusion_sensitivity as occ
from gradejax.attribution.common import class_score
import toy_nets
from toy_nets import PATCH, PatchNet, ProductNet

H, W = 16, 16


def _bind(module, shape):
  return toy_nets.bind(module, shape)


def LinearNet():  # two classes, no bias: the drops and fits below are sums of weights
  return toy_nets.LinearNet(classes=2, bias=False)


@pytest.fixture(scope='module')
def images():
  return jax.random.uniform(jax.random.key(1), (2, H, W, 3), minval=0.2, maxval=1.0)


def _patch_mask():
  m = np.zeros((H, W), bool)
  m[PATCH] = True
  return m


def test_rise_matches_its_formula_and_finds_the_patch(images):
  fn, _ = _bind(PatchNet(), images.shape)
  t = np.array([0, 0])
  key = jax.random.key(3)
  kw = dict(n_masks=400, cells=4, p_keep=0.5, chunk=100)
  got = np.asarray(rise.rise(fn, images, t, key, fill=0.0, **kw))
  masks = np.asarray(rise.masks_used(key, 400, (H, W), cells=4, p_keep=0.5, chunk=100))
  assert masks.min() >= 0 and masks.max() <= 1 and abs(masks.mean() - 0.5) < 0.05
  x = np.asarray(images)
  scores = np.einsum('nhw,bhw->nb', masks[:, PATCH[0], PATCH[1]], x[:, PATCH[0], PATCH[1], 0])
  ref = np.einsum('nb,nhw->bhw', scores - scores.mean(0), masks) / (400 * 0.5)
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
  raw = np.asarray(rise.rise(fn, images, t, key, fill=0.0, centre=False, **kw))
  np.testing.assert_allclose(raw, np.einsum('nb,nhw->bhw', scores, masks) / 200, rtol=1e-4,
                             atol=1e-4)
  mask = np.broadcast_to(_patch_mask(), got.shape)
  assert localisation.pointing_game(got, mask, tolerance=0).all()
  # the patch is 1/16 of the image; RISE's smooth masks (4 px cells) spread it about a cell
  assert localisation.mass_inside(got, mask).min() > 3 / 16


def test_rise_chunking_does_not_change_the_masks(images):
  fn, _ = _bind(PatchNet(), images.shape)
  a = rise.rise(fn, images, 0, jax.random.key(0), n_masks=60, cells=4, chunk=20)
  b = rise.rise(fn, images, 0, jax.random.key(0), n_masks=60, cells=4, chunk=20, unroll=False)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_superpixel_removal_and_lime_on_a_linear_model(images):
  fn, variables = _bind(LinearNet(), images.shape)
  w = np.asarray(variables['params']['w'])
  seg = superpixels.grid_segments(2, (H, W), (4, 4))
  t = np.array([1, 0])
  contrib = np.einsum('bhwc,hwcb->bhw', np.asarray(images) - 0.3, w[..., t])  # fill 0.3
  seg_sum = np.stack([np.bincount(seg[b].ravel(), contrib[b].ravel(), 16) for b in range(2)])
  ref = np.take_along_axis(seg_sum, seg.reshape(2, -1), 1).reshape(2, H, W)
  removal = superpixels.superpixel_ablation(fn, images, t, segments=seg, scorer='removal',
                                            fill=0.3)
  np.testing.assert_allclose(removal, ref, rtol=1e-4, atol=1e-4)
  lime = superpixels.superpixel_ablation(fn, images, t, key=jax.random.key(0), segments=seg,
                                         scorer='lime', n_samples=200, ridge=0.0, fill=0.3)
  np.testing.assert_allclose(lime, ref, rtol=1e-3, atol=1e-3)
  shap = superpixels.superpixel_ablation(fn, images, t, key=jax.random.key(0), segments=seg,
                                         scorer='kernel_shap', n_samples=200, fill=0.3)
  np.testing.assert_allclose(shap, ref, rtol=1e-3, atol=1e-3)


def test_superpixel_removal_finds_the_patch(images):
  fn, _ = _bind(PatchNet(), images.shape)
  seg = superpixels.grid_segments(2, (H, W), (4, 4))
  m = np.asarray(superpixels.superpixel_ablation(fn, images, 0, segments=seg, fill=0.0))
  # cells are 4x4: the patch (rows 4:8, cols 9:13) lies in cells (1, 2) and (1, 3), each of
  # which drops by the sum of its part of the patch; every other cell by 0
  x = np.asarray(images)[..., 0]
  np.testing.assert_allclose(m[:, 4, 8], x[:, 4:8, 9:12].sum(axis=(1, 2)), rtol=1e-5)
  np.testing.assert_allclose(m[:, 4, 12], x[:, 4:8, 12].sum(axis=1), rtol=1e-5)
  cells = np.zeros((H, W), bool)
  cells[4:8, 8:16] = True
  np.testing.assert_allclose(localisation.mass_inside(m, np.broadcast_to(cells, m.shape)), 1.0)


def test_kernel_shap_recovers_shapley_values_with_padded_segments():
  fn, _ = _bind(ProductNet(), (2, 8, 12, 1))
  x = np.zeros((2, 8, 12, 1), np.float32)
  x[:, 0:4] = 1.0
  seg0 = superpixels.grid_segments(1, (8, 12), (2, 3))[0]  # 6 segments
  seg1 = seg0.copy()
  seg1[4:] = 3  # the bottom row one segment: 4 segments, the first 3 the same cells
  seg = np.stack([seg0, seg1])
  phi = np.asarray(superpixels.superpixel_ablation(fn, jnp.asarray(x), 0, segments=seg,
                                                   key=jax.random.key(0), scorer='kernel_shap',
                                                   n_samples=3000, fill=0.0))
  for b in range(2):
    cell = lambda r, c: phi[b, 4 * r, 4 * c]
    np.testing.assert_allclose([cell(0, 0), cell(0, 1), cell(0, 2)], [5 / 6, 5 / 6, 1 / 3],
                               atol=0.02)
    np.testing.assert_allclose(phi[b, 4:].max(), 0.0, atol=0.02)
    np.testing.assert_allclose(phi[b, 4:].min(), 0.0, atol=0.02)


def test_shap_size_weights():
  """Without padding the sampling already follows the Shapley kernel (weights 1); the kernel's
  marginal on a subset of players is that subset's kernel, so padded images get constant
  weights too (checked here by enumeration), and the end coalitions get 0."""
  wts = superpixels.shap_size_weights(6, np.array([6, 4]))
  np.testing.assert_allclose(wts[0, 1:6] / wts[0, 1], 1.0, rtol=1e-9)
  np.testing.assert_allclose(wts[1, 1:4] / wts[1, 1], 1.0, rtol=1e-9)
  assert wts[0, 0] == 0 and wts[0, 6] == 0 and wts[1, 0] == 0 and wts[1, 4] == 0
  assert (wts[1, 5:] == 0).all()


def test_multiscale_occlusion_combines_normalised_single_scales(images):
  fn, _ = _bind(LinearNet(), images.shape)
  t = np.array([0, 1])
  for combine, red in (('mean', np.mean), ('max', np.max)):
    got = occ.occlusion_multiscale(fn, images, t, patches=(4, 8), strides=(2, 4),
                                   combine=combine, fill=0.5)
    maps = []
    for p, s in ((4, 2), (8, 4)):
      m = np.asarray(occ.occlusion(fn, images, t, patch=p, stride=s, fill=0.5))
      maps.append(m / np.abs(m).max(axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(got, red(np.stack(maps), axis=0), rtol=1e-5, atol=1e-6)


def test_fills():
  x = jnp.full((1, 12, 12, 3), 0.25).at[0, 5:7, 5:7].set(1.0)  # a bright 2x2 "sticker"
  m = jnp.zeros((1, 12, 12)).at[0, 4:8, 4:8].set(1.0)
  for mode in ('blur', 'inpaint'):
    base = fills.prepare(x, 0.0, mode, 2.0)
    out = np.asarray(fills.apply(x, m, base, mode, 2.0))[0, 0]
    np.testing.assert_allclose(out[~np.asarray(m[0], bool)], 0.25, atol=1e-6)  # kept as is
    if mode == 'inpaint':  # only the surroundings count: the sticker vanishes
      np.testing.assert_allclose(out, 0.25, atol=1e-5)
    else:  # a blur keeps some of it
      assert out[5:7, 5:7].max() > 0.3
  out = np.asarray(fills.apply(x, m, fills.prepare(x, 0.5, 'value', 0.0), 'value', 0.0))[0, 0]
  np.testing.assert_allclose(out[4:8, 4:8], 0.5)


def test_occlusion_inpaint_fill_hides_a_sticker():
  """A net that reads one bright pixel: inpainting it away drops the score by its excess
  over the (flat) surroundings; a blur of the same sigma keeps part of it."""
  class Pixel(nn.Module):
    @nn.compact
    def __call__(self, images, *, relu=nn.relu):
      return nets.tap(self, 'logits', images[:, 6:7, 6, 0] * jnp.ones((1, 2)))
  fn, _ = _bind(Pixel(), (1, 12, 12, 3))
  x = jnp.full((1, 12, 12, 3), 0.2).at[0, 6, 6].set(1.0)
  g = np.asarray(occ.occlusion_grid(fn, x, 0, patch=4, stride=4, fill_mode='inpaint',
                                    blur_sigma=2.0))
  np.testing.assert_allclose(g[0, 1, 1], 0.8, atol=1e-5)
  np.testing.assert_allclose(np.delete(g.ravel(), 4), 0.0, atol=1e-6)
  b = np.asarray(occ.occlusion_grid(fn, x, 0, patch=4, stride=4, fill_mode='blur',
                                    blur_sigma=2.0))
  assert 0 < b[0, 1, 1] < 0.8


def test_xrai_greedy_order_by_density():
  a = np.zeros((1, 4, 4), np.float32)
  a[0, 0, 0] = 8.0  # region 1 (1 px) density 8 > region 0's (4 px) 2.5
  a[0, 0, 1] = 2.0
  regions = np.zeros((1, 3, 4, 4), bool)
  regions[0, 0, :2, :2] = True
  regions[0, 1, 0, 0] = True
  regions[0, 2] = True
  out = np.asarray(xrai.greedy_density(jnp.asarray(a), jnp.asarray(regions)))[0]
  assert out[0, 0] == 8.0
  np.testing.assert_allclose(out[:2, :2].ravel()[1:], 2.0 / 3)  # what is left of region 0
  np.testing.assert_allclose(out[2:, :], 0.0)  # the rest: region 2's remaining density 0
  np.testing.assert_allclose(out[:2, 2:], 0.0)


def test_registry_runs_the_new_methods(images):
  fn, _ = _bind(PatchNet(), images.shape)
  x = np.asarray(images)
  mask = np.broadcast_to(_patch_mask(), (2, H, W))
  for name, kw in [('rise', dict(n_masks=100, cells=4, chunk=50)),
                   ('occlusion_multiscale', dict(patches=(4, 8))),
                   ('superpixel_ablation', dict(n_segments=16)),
                   ('kernel_shap', dict(n_segments=16, n_samples=64)),
                   ('lime', dict(n_segments=16, n_samples=64)),
                   ('xrai', dict(base='saliency', scales=(8, 16)))]:
    h = np.asarray(registry.heatmap(name, fn, x, 0, key=jax.random.key(0), **kw))
    assert h.shape == (2, H, W), name
    assert localisation.pointing_game(h, mask, tolerance=2).all(), name


def test_road_imputation_and_curve():
  ramp = np.linspace(0, 1, 12, dtype=np.float32)
  x = jnp.asarray(np.broadcast_to(ramp[None, None, :, None], (1, 12, 12, 3)))
  m = jnp.zeros((1, 12, 12), bool).at[0, 4:8, 4:8].set(True)
  out = faithfulness.noisy_linear_impute(x, m, jax.random.key(0), noise=0.0, iterations=200)
  np.testing.assert_allclose(out, x, atol=2e-3)  # a linear ramp is harmonic: filled exactly
  noisy = faithfulness.noisy_linear_impute(x, m, jax.random.key(0), noise=0.05, iterations=200)
  d = np.asarray(noisy - x)[0]
  assert np.all(d[~np.asarray(m[0])] == 0) and 0.03 < d[4:8, 4:8].std() < 0.07
  fn, _ = _bind(PatchNet(), (1, 12, 12, 3))
  del fn


def test_road_on_the_patch_net(images):
  fn, _ = _bind(PatchNet(), images.shape)
  good = np.broadcast_to(_patch_mask().astype(np.float32), (2, H, W))
  bad = 1.0 - good
  fr = (0.0625, 0.5)
  kw = dict(fractions=fr, score='logit', noise=0.0)
  c_good = np.asarray(faithfulness.road(fn, images, 0, good, jax.random.key(0), **kw))
  c_bad = np.asarray(faithfulness.road(fn, images, 0, bad, jax.random.key(0), **kw))
  full = np.asarray(images)[:, PATCH[0], PATCH[1], 0].sum(axis=(1, 2))
  np.testing.assert_allclose(c_good[:, 0], full, rtol=1e-5)
  np.testing.assert_allclose(c_bad[:, 1], full, rtol=1e-5)  # 1/16 of the wrong pixels: no loss
  assert (c_good[:, 1] != full).all()  # the patch itself imputed from its surroundings
  lerf = np.asarray(faithfulness.road(fn, images, 0, good, jax.random.key(0), order='lerf', **kw))
  np.testing.assert_allclose(lerf[:, 1], full, rtol=1e-5)
  auc = np.asarray(faithfulness.road_auc(c_good, fr))
  ref = (0.5 * (c_good[:, 0] + c_good[:, 1]) * fr[0]
         + 0.5 * (c_good[:, 1] + c_good[:, 2]) * (fr[1] - fr[0])) / fr[1]
  np.testing.assert_allclose(auc, ref, rtol=1e-5)


def test_relevance_rank_accuracy_and_bootstrap():
  mask = np.zeros((1, 4, 4), bool)
  mask[0, 0, :2] = True  # 2 pixels
  h = np.zeros((1, 4, 4))
  h[0, 0, 0], h[0, 3, 3] = 5.0, 4.0  # top 2: one inside, one outside
  np.testing.assert_allclose(localisation.relevance_rank_accuracy(h, mask), [0.5])
  v = np.array([0.0, 1.0] * 50)
  mean, lo, hi = localisation.bootstrap_ci(v, n_boot=4000, seed=0)
  assert mean == 0.5 and lo < 0.5 < hi
  # the percentile CI of a mean of 100 Bernoulli(1/2): about +-1.96 * 0.05
  np.testing.assert_allclose([lo, hi], [0.402, 0.598], atol=0.02)
  assert localisation.bootstrap_ci(np.full(10, 0.3))[1:] == (pytest.approx(0.3),
                                                            pytest.approx(0.3))


def test_occlusion_centre_aggregate_paints_each_patch_at_its_centre(images):
  fn, _ = _bind(LinearNet(), images.shape)
  grid = np.asarray(occ.occlusion_grid(fn, images, 0, patch=6, stride=4, fill=0.5))  # 3 x 3
  m = np.asarray(occ.occlusion(fn, images, 0, patch=6, stride=4, fill=0.5, aggregate='centre'))
  for i in range(3):
    for j in range(3):  # patch (i, j) spans 4i .. 4i+5; its centre pixels are 4i+2, 4i+3
      np.testing.assert_allclose(m[:, 4 * i + 2, 4 * j + 3], grid[:, i, j], rtol=1e-6)
  np.testing.assert_allclose(m[:, 15, 15], grid[:, 2, 2], rtol=1e-6)  # beyond: the nearest
  # pixel 5 lies 2.5 px from patch 0's centre (2.5) and 1.5 px from patch 1's (6.5)
  np.testing.assert_allclose(m[:, 5, 5], grid[:, 1, 1], rtol=1e-6)
  np.testing.assert_allclose(m[:, 4, 4], grid[:, 0, 0], rtol=1e-6)


OTHER = (slice(10, 14), slice(1, 5))  # the region CommonModeNet adds to both classes


class CommonModeNet(nn.Module):
  """outputs = [sA + sB, -sA + sB], sA / sB the channel-0 sums over PATCH / OTHER: region B
  moves both logits alike (a "disturbed face"), only A separates the classes; the contrast
  (logit 0 minus logit 1) is exactly 2 sA."""

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    del relu
    x = nets.tap(self, 'input', images)
    a = jnp.sum(x[:, PATCH[0], PATCH[1], 0], axis=(1, 2))
    b = jnp.sum(x[:, OTHER[0], OTHER[1], 0], axis=(1, 2))
    return nets.tap(self, 'logits', jnp.stack([a + b, -a + b], axis=1))


def test_contrast_score_ignores_what_moves_every_class_alike(images):
  fn, _ = _bind(CommonModeNet(), images.shape)
  x = np.asarray(images)
  s_a = x[:, PATCH[0], PATCH[1], 0].sum(axis=(1, 2))
  s_b = x[:, OTHER[0], OTHER[1], 0].sum(axis=(1, 2))
  kw = dict(patch=4, stride=1, fill=0.0)
  # the occluder at (4, 9) hides PATCH exactly, at (10, 1) OTHER exactly (fill 0: drop = sum)
  for t, sign in ((0, 1), (1, -1)):
    logit = np.asarray(occ.occlusion_grid(fn, images, t, **kw))
    contrast = np.asarray(occ.occlusion_grid(fn, images, t, score='contrast', **kw))
    np.testing.assert_allclose(logit[:, 4, 9], sign * s_a, rtol=1e-5)
    np.testing.assert_allclose(logit[:, 10, 1], s_b, rtol=1e-5)
    np.testing.assert_allclose(contrast[:, 4, 9], 2 * sign * s_a, rtol=1e-5)
    np.testing.assert_allclose(contrast[:, 10, 1], 0.0, atol=1e-5)
  # the pixel map and the registry pass score (and aggregate) through
  m = np.asarray(registry.heatmap('occlusion', fn, images, np.array([0, 0]), score='contrast',
                                  aggregate='centre', **kw))
  assert np.unravel_index(np.argmax(m[0]), m[0].shape) in {(5, 10), (6, 11), (5, 11), (6, 10)}
  np.testing.assert_allclose(m[:, 11, 2], 0.0, atol=1e-5)  # OTHER's centre: nothing
  # three classes: the target minus the mean of the other two
  three = jnp.array([[[1.0, 4.0, -2.0]]])  # [B=1, 1, K=3]
  np.testing.assert_allclose(np.asarray(class_score(three, jnp.array([1]), 'contrast')),
                             [[4.0 - (1.0 - 2.0) / 2]])
  with pytest.raises(ValueError, match='score must be'):
    class_score(three, jnp.array([1]), 'margin')


def test_rise_contrast_is_the_logit_difference_from_the_same_masks(images):
  key = jax.random.key(5)
  kw = dict(n_masks=200, cells=4, chunk=100, fill=0.0)
  common, _ = _bind(CommonModeNet(), images.shape)
  patch, _ = _bind(PatchNet(), images.shape)
  t = np.array([0, 1])
  # CommonModeNet's contrast is 2 sA for target 0 and -2 sA for target 1 under every mask,
  # i.e. twice PatchNet's logit of the same target: the maps must be twice PatchNet's RISE
  got = np.asarray(rise.rise(common, images, t, key, score='contrast', **kw))
  want = 2 * np.asarray(rise.rise(patch, images, t, key, **kw))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  allmaps = np.asarray(rise.rise_all_outputs(common, images, key, **kw))  # [B, H, W, K]
  for k in (0, 1):
    np.testing.assert_allclose(allmaps[..., k],
                               np.asarray(rise.rise(common, images, np.array([k, k]), key, **kw)),
                               rtol=1e-5, atol=1e-6)
  # the logit map still sees OTHER (it moves logit 0), the contrast map does not
  logit = np.asarray(rise.rise(common, images, t, key, **kw))
  assert logit[0][OTHER].mean() > 0.3 * logit[0][PATCH].mean()
  assert abs(got[0][OTHER].mean()) < 0.1 * got[0][PATCH].mean()


def test_multiscale_passes_aggregate_and_score(images):
  fn, _ = _bind(CommonModeNet(), images.shape)
  t = np.array([0, 1])
  kw = dict(fill=0.0, aggregate='centre', score='contrast')
  got = np.asarray(occ.occlusion_multiscale(fn, images, t, patches=(4, 6), strides=(2, 2),
                                            combine='max', **kw))
  maps = [np.asarray(occ.occlusion(fn, images, t, patch=p, stride=2, **kw)) for p in (4, 6)]
  maps = [m / np.abs(m).max(axis=(1, 2), keepdims=True) for m in maps]
  np.testing.assert_allclose(got, np.max(np.stack(maps), axis=0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(occ.combine_scales(maps, 'mean')),
                             np.mean(np.stack(maps), axis=0), rtol=1e-6)


def test_report_options_reach_occlusion_rise_and_multiscale(images):
  from gradejax.attribution import battery as ar
  fn, _ = _bind(CommonModeNet(), images.shape)
  t = np.array([0, 1])
  opts = ar.Options(patch=4, stride=2, fill_mode='value', fill=0.0, occlusion_aggregate='mean',
                    perturbation_score='contrast', patches=(4, 6), multiscale_combine='max',
                    rise_masks=100, rise_cells=4)
  got = {m: np.asarray(ar.heatmap_fn(m, opts, 'logits')(fn, images, t))
         for m in ('occlusion', 'occlusion_multiscale', 'rise')}
  common = dict(fill=0.0, score='contrast')
  np.testing.assert_allclose(got['occlusion'], occ.occlusion(
      fn, images, t, patch=4, stride=2, aggregate='mean', **common), rtol=1e-6)
  np.testing.assert_allclose(got['occlusion_multiscale'], occ.occlusion_multiscale(
      fn, images, t, patches=(4, 6), combine='max', aggregate='mean', **common), rtol=1e-6)
  np.testing.assert_allclose(got['rise'], rise.rise(
      fn, images, t, jax.random.key(0), n_masks=100, cells=4, unroll=False, **common),
      rtol=1e-5, atol=1e-7)
  # the defaults: centre-painted occlusion of the logit
  d = ar.Options(patch=4, stride=2, fill_mode='value', fill=0.0)
  np.testing.assert_allclose(np.asarray(ar.heatmap_fn('occlusion', d, 'logits')(fn, images, t)),
                             occ.occlusion(fn, images, t, patch=4, stride=2, fill=0.0,
                                           aggregate='centre'), rtol=1e-6)
