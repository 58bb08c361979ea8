"""What the network relies on: extremal perturbations, SpRAy and TCAV against analytic answers.

Toy nets: a net that reads one patch only (the extremal mask of the patch's area must sit on
it; the causal check of a strategy there must beat random regions), a net whose logit is linear
in a known direction u at a tap (TCAV: tests/test_tcav.py), and maps drawn from known templates (spectral clustering must
recover them, the eigengap must count them).
"""
import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradejax import nets
from gradejax.attribution import extremal, extremal_starts, registry, relies, spray, tcav

H = W = 32
PATCH = (slice(8, 16), slice(18, 26))  # 8 x 8: area 1/16 of the image


class PatchNet(nn.Module):
  """outputs = (sum of channel 0 over PATCH) * [1, -1]."""

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    del relu
    x = nets.tap(self, 'input', images)
    s = jnp.sum(x[:, PATCH[0], PATCH[1], 0], axis=(1, 2))
    return nets.tap(self, 'logits', jnp.stack([s, -s], axis=1))


def _bind(module, shape):
  return nets.bind(module, module.init(jax.random.key(0), jnp.zeros(shape)))


def _truth():
  t = np.zeros((H, W), bool)
  t[PATCH] = True
  return t


def _torchray_generate(p, step, sigma):
  """torchray's MaskGenerator.generate, transcribed loop by loop (unfold with zero padding,
  nearest upsampling, kernel weights, softmax pooling, clamp, crop), for one [h_in, w_in]."""
  shape = (H, W)
  margin, coldness = sigma, 20
  padding = 1 + math.ceil((margin + sigma) / step)
  radius = 1 + math.ceil(sigma / step)
  shape_in = [math.ceil(z / step) for z in shape]
  mid = [z + 2 * padding - (2 * radius + 1) + 1 for z in shape_in]
  out = [step * z - step + 1 for z in mid]
  pp = np.pad(p, padding)
  full = np.zeros(out)
  for uy in range(out[0]):
    for ux in range(out[1]):
      jy, jx = uy // step, ux // step
      vals = []
      for ky in range(2 * radius + 1):
        for kx in range(2 * radius + 1):
          iy, ix = jy + ky - padding, jx + kx - padding
          d = math.hypot(uy - (margin + step * iy), ux - (margin + step * ix))
          vals.append(pp[jy + ky, jx + kx] * math.exp(-2 * max(d / sigma - 0.5, 0) ** 2))
      v = np.array(vals)
      e = np.exp(coldness * v - (coldness * v).max())
      full[uy, ux] = (v * e / e.sum()).sum()
  m = round(margin)
  return np.clip(full, 0, 1)[m:m + H, m:m + W]


def test_mask_generator_is_torchrays():
  p = np.random.default_rng(0).uniform(size=(math.ceil(H / 4), math.ceil(W / 4)))
  geo = extremal.mask_geometry((H, W), 4, 6.0)
  ours = np.asarray(extremal.generate(jnp.asarray(p, jnp.float32), geo))
  ref = _torchray_generate(p, 4, 6.0)
  # torchray's mask with margin is step * mid - step + 1 px wide, here one short of the
  # image after the crop (31 px: its callers resize); ours covers every pixel.
  assert ref.shape == (31, 31)
  np.testing.assert_allclose(ours[:31, :31], ref, atol=2e-6)


@pytest.mark.parametrize('variant', ['preserve', 'delete'])
def test_extremal_mask_of_the_patch_area_recovers_the_patch(variant):
  fn = _bind(PatchNet(), (1, H, W, 3))
  x = jnp.ones((1, H, W, 3))
  truth = _truth()
  r = extremal.extremal_perturbation(fn, x, 0, areas=(truth.mean(),), variant=variant,
                                     steps=800, step=1, sigma=2.0, jitter=False,
                                     fill_mode='value', fill=0.0, optimiser='torchray',
                                     reward='raw')
  _assert_recovers_patch(r, variant)


def test_extremal_default_schedule_recovers_the_patch_in_60_steps():
  # The default (Adam, tie-shared rank loss, reward in units of its starting gradient): the
  # same answer as torchray's 800 steps in 60, whatever the logit's units (x 1000 here).
  # (The delete game from the clean image reaches IoU 0.83 here: not asserted.)
  fn = _bind(PatchNet(), (1, H, W, 3))
  big = lambda x: jax.tree_util.tree_map(lambda v: 1000 * v, fn(x))
  r = extremal.extremal_perturbation(big, jnp.ones((1, H, W, 3)), 0, areas=(_truth().mean(),),
                                     step=1, sigma=2.0, jitter=False, fill_mode='value',
                                     fill=0.0)
  _assert_recovers_patch(dataclasses.replace(r, scores=r.scores / 1000), 'preserve', inside=0.7)


def test_init_params_start_on_the_maps_top_regions():
  geo = extremal.mask_geometry((H, W), 1, 2.0)
  occ = np.zeros((1, H, W), np.float32)
  occ[0][_truth()] = 2.0
  occ[0, 0, 0] = 1.0  # the next-highest pixel: outside the top 1/16
  p = np.asarray(extremal_starts.init_params(jnp.asarray(occ), (1 / 16,), geo, 1))
  np.testing.assert_array_equal(p[0, 0], _truth())  # step 1: node = pixel
  geo4 = extremal.mask_geometry((H, W), 4, 2.0)
  p4 = np.asarray(extremal_starts.init_params(jnp.asarray(occ), (1 / 16, 1 / 4), geo4, 4))
  assert p4.shape == (2, 1, 8, 8)
  # node (i, j) at pixel (4i, 4j) takes the max over rows 4i-2 .. 4i+1 (cols alike): the
  # patch (rows 8-15, cols 18-25) lights node rows 2 (6-9), 3, 4 (14-17) and cols 5, 6
  rows, cols = np.nonzero(p4[0, 0])
  assert set(rows) == {2, 3, 4} and set(cols) == {5, 6}
  assert p4[1, 0].sum() > p4[0, 0].sum()  # a larger area starts on more nodes


def test_extremal_delete_game_from_the_occlusion_start_recovers_the_patch():
  # The delete game from the clean image reaches IoU 0.83 on this net; started from the
  # occlusion map's top region (coarse: 8 px patches every 4 px) it finds the patch itself.
  fn = _bind(PatchNet(), (1, H, W, 3))
  x = jnp.ones((1, H, W, 3))
  occ = registry.heatmap('occlusion', fn, x, 0, patch=8, stride=4, fill_mode='value', fill=0.0)
  r = extremal.extremal_perturbation(fn, x, 0, areas=(_truth().mean(),), variant='delete',
                                     step=1, sigma=2.0, jitter=False, fill_mode='value',
                                     fill=0.0, init=occ)
  # (its top 64 pixels are exactly the patch; the soft rim holds about half the mass)
  _assert_recovers_patch(r, 'delete', inside=0.5)
  with pytest.raises(ValueError, match=r'init must be one map per image, \[B, H, W\]'):
    extremal.extremal_perturbation(fn, x, 0, areas=(0.1,), init=occ[:, :4])


class EitherHalf(nn.Module):
  """outputs = min(sum of channel 0 over PATCH, half of it) * [1, -1]: the patch is read from
  either half (removing one half leaves the logit where it was: its gradient is 0 there)."""

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    del relu
    x = nets.tap(self, 'input', images)
    s = jnp.minimum(jnp.sum(x[:, PATCH[0], PATCH[1], 0], axis=(1, 2)), _truth().sum() / 2)
    return nets.tap(self, 'logits', jnp.stack([s, -s], axis=1))


_EITHER_HALF_KW = dict(variant='delete', step=1, sigma=2.0, jitter=False, fill_mode='value',
                      fill=0.0)


def _assert_finds_either_half(start, inside):
  """The delete game on EitherHalf from ``start``: the clean start stays off the patch (logit
  32); this one's top patch-area pixels are exactly the patch, the logit near 0, at least
  ``inside`` of the mask's mass on it."""
  fn = _bind(EitherHalf(), (1, H, W, 3))
  x = jnp.ones((1, H, W, 3))
  truth = _truth()
  kw = dict(areas=(truth.mean(),), **_EITHER_HALF_KW)
  clean = extremal.extremal_perturbation(fn, x, 0, **kw)
  assert clean.scores[0, 0] > 31.9  # the clean start does not find it
  r = extremal.extremal_perturbation(fn, x, 0, start=start, **kw)
  m = r.masks[0, 0]
  top = np.zeros(H * W, bool)
  top[np.argsort(-m.ravel(), kind='stable')[:truth.sum()]] = True
  np.testing.assert_array_equal(top.reshape(H, W), truth)
  assert r.scores[0, 0] < 0.1 * truth.sum() / 2 and m[truth].sum() / m.sum() >= inside
  return fn, x, kw


def test_extremal_scan_start_finds_a_cue_read_from_either_half():
  # On the clean image the logit's gradient is 0 (clipped at half the patch's sum), so the
  # delete game from the clean start has nothing to follow (measured: mask off the patch, IoU
  # 0, logit unchanged at 32); a scan with a square of the mask's own area (8 x 8, stride 2)
  # hides the whole patch and starts the mask on it.
  truth = _truth()
  assert extremal_starts.scan_side(truth.mean(), (H, W)) == 8
  fn, x, kw = _assert_finds_either_half('scan', inside=0.5)
  starts = np.asarray(extremal_starts.scan_starts(fn, x, 0, (truth.mean(),), fill_mode='value',
                                           fill=0.0))
  assert starts.shape == (1, 1, H, W)
  # the squares covering the patch's centre: the one on the patch drops 32, its neighbours less
  assert np.unravel_index(starts[0, 0].argmax(), (H, W)) in {(r, c) for r in (10, 11, 12, 13)
                                                             for c in (20, 21, 22, 23)}
  with pytest.raises(ValueError, match='start must be one of clean, scan'):
    extremal.extremal_perturbation(fn, x, 0, start='occlusion', **kw)


def test_extremal_empty_start_finds_a_cue_read_from_either_half():
  # From the fully removed image ('empty': the delete game's mask starts at 1 everywhere and
  # shrinks to its area) restoring either half of the patch raises the logit, so the gradient
  # points at the whole patch, which the clean start's cannot (measured: clean IoU 0, logit
  # unchanged at 32; empty IoU 1, logit 1.1 of 32). No map, no scan: one extra argument.
  _assert_finds_either_half('empty', inside=0.7)


def test_extremal_starts_keep_the_best_of_several_regions():
  # The start map's highest peak is a decoy the net does not read (the top-left 8 x 8
  # corner); its second, after suppression, the patch. One start refines the decoy and the
  # logit stays at 32 (the patch is read from either half: nothing to follow from there); two
  # starts also refine the patch, whose binary 8 x 8 region scores 0, and keep it.
  fn = _bind(EitherHalf(), (1, H, W, 3))
  x = jnp.ones((1, H, W, 3))
  truth = _truth()
  start = np.zeros((1, H, W), np.float32)
  start[0, :8, :8] = 2.0
  start[0][truth] = 1.0
  regions = np.asarray(extremal_starts.start_regions(jnp.asarray(start), (truth.mean(),), 2))
  assert regions.shape == (2, 1, 1, H, W)
  top = lambda m: np.argsort(-m.ravel(), kind='stable')[:truth.sum()]
  assert set(top(regions[0, 0, 0])) == set(np.flatnonzero(start[0] == 2.0))
  assert set(top(regions[1, 0, 0])) == set(np.flatnonzero(truth))
  kw = dict(areas=(truth.mean(),), variant='delete', step=1, sigma=2.0, jitter=False,
            fill_mode='value', fill=0.0, init=start)
  one = extremal.extremal_perturbation(fn, x, 0, **kw)
  assert one.scores[0, 0] > 31.9 and one.start_scores.shape == (1, 2, 1)  # guarded: + start
  two = extremal.extremal_perturbation(fn, x, 0, starts=2, guard=False, **kw)
  assert two.start_scores.shape == (1, 2, 1)
  np.testing.assert_allclose(two.start_scores[0, :, 0], [32.0, 0.0], atol=1e-4)
  both = extremal.extremal_perturbation(fn, x, 0, starts=2, **kw)  # + the 2 start regions
  np.testing.assert_allclose(both.start_scores[0, :, 0], [32.0, 0.0, 32.0, 0.0], atol=1e-4)
  assert both.kept.tolist() == [[1]]  # the optimised mask from the patch's start (first tie)
  m = two.masks[0, 0]
  hard = np.zeros(H * W, bool)
  hard[top(m)] = True
  np.testing.assert_array_equal(hard.reshape(H, W), truth)
  assert two.scores[0, 0] < 0.1 * truth.sum() / 2
  # region_scores: the binary region of a mask's area, removed (hand: the patch -> 0, the
  # decoy -> 32, half the patch -> still 32: read from either half)
  half = truth.copy()
  half[:, :22] = False
  got = extremal_starts.region_scores(fn, x, 0, jnp.asarray(np.stack([truth, start[0] == 2.0, half]
                                                               )[:, None], jnp.float32),
                               areas=(truth.mean(),) * 2 + (half.mean(),), variant='delete',
                               fill=0.0, fill_mode='value', blur_sigma=5.0, score='logit')
  np.testing.assert_allclose(np.asarray(got)[:, 0], [0.0, 32.0, 32.0], atol=1e-5)
  with pytest.raises(ValueError, match='starts > 1 needs a map'):
    extremal.extremal_perturbation(fn, x, 0, starts=2, areas=(0.1,))


def test_extremal_guard_returns_the_start_region_where_the_optimisation_leaves_it():
  # The start map is the patch itself, the delete game's optimum (logit 0 with all of it
  # removed). With wide kernels (sigma 6 on a 32 px image) the generated mask is a plateau
  # larger than the patch, and its top patch-area pixels (ties by position) keep only part
  # of it: made binary, the optimised mask scores 28 (hand: read from either half, min(64 -
  # removed, 32) = 28 with 36 of its 64 pixels removed). The guard scores both candidates as
  # binary regions and returns the patch, exactly, at logit 0.
  fn = _bind(EitherHalf(), (1, H, W, 3))
  x = jnp.ones((1, H, W, 3))
  truth = _truth()
  kw = dict(areas=(truth.mean(),), variant='delete', step=3, sigma=6.0, jitter=False,
            fill_mode='value', fill=0.0, steps=5, init=truth[None].astype(np.float32))
  off = extremal.extremal_perturbation(fn, x, 0, guard=False, **kw)
  on = extremal.extremal_perturbation(fn, x, 0, **kw)
  assert off.kept is None and off.start_scores is None
  np.testing.assert_allclose(on.start_scores[0, :, 0], [28.0, 0.0], atol=1e-4)
  assert on.kept.tolist() == [[1]]
  np.testing.assert_array_equal(on.masks[0, 0], truth.astype(np.float32))
  assert on.scores[0, 0] == pytest.approx(0.0, abs=1e-5)
  np.testing.assert_allclose(on.history, off.history)  # the same optimisation either way
  top = np.argsort(-off.masks[0, 0].ravel(), kind='stable')[:truth.sum()]
  assert truth.ravel()[top].sum() < truth.sum()  # unguarded: its region is not the patch
  # a graded start map: the region returned is 1 - TIE_BREAK .. 1 in the map's order, so its
  # maximum is the map's peak (a pointing game's point), not the region's first pixel
  yy, xx = np.mgrid[:H, :W]
  graded = truth[None] * (1.0 - 0.01 * np.hypot(yy - 13, xx - 21))[None]  # peak at (13, 21)
  g = extremal.extremal_perturbation(fn, x, 0, **{**kw, 'init': graded.astype(np.float32)})
  assert g.kept.tolist() == [[1]] and g.scores[0, 0] == pytest.approx(0.0, abs=1e-5)
  m = g.masks[0, 0]
  assert np.unravel_index(m.argmax(), m.shape) == (13, 21)
  assert (m[~truth] == 0).all() and m[truth].min() >= 1 - extremal.TIE_BREAK - 1e-7
  assert m[truth].min() < 1 - 0.5 * extremal.TIE_BREAK  # graded, not flat
  # where the optimised mask plays better (the decoy start: both 32, ties keep the optimised)
  start = np.zeros((1, H, W), np.float32)
  start[0, :8, :8] = 1.0
  kept = extremal.extremal_perturbation(fn, x, 0, **{**kw, 'init': start, 'sigma': 2.0,
                                                      'step': 1})
  assert kept.kept.tolist() == [[0]]


def test_extremal_host_loop_computes_the_same_steps_as_the_compiled_scan():
  # On CPU the steps run as a host loop over one compiled step (XLA's while loop slows the
  # backward pass); it must be the same optimisation as the scan, step for step (jitter on:
  # the mirrored steps and Adam's bias correction both read the step's index).
  fn = _bind(PatchNet(), (1, H, W, 3))
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, H, W, 3)), jnp.float32)
  kw = dict(areas=(1 / 16, 1 / 8), variant='delete', steps=7, step=2, sigma=3.0, jitter=True,
            fill_mode='blur', blur_sigma=2.0)
  scan = extremal.extremal_perturbation(fn, x, 0, loop=False, **kw)
  host = extremal.extremal_perturbation(fn, x, 0, loop=True, **kw)
  assert host.history.shape == scan.history.shape == (7, 2)
  np.testing.assert_allclose(host.masks, scan.masks, atol=1e-5)
  np.testing.assert_allclose(host.history, scan.history, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(host.scores, scan.scores, rtol=1e-5, atol=1e-5)
  assert np.abs(scan.masks[:, 0] - scan.masks[:, 1]).max() > 0.1  # the areas differ: not vacuous


def test_tied_targets_share_the_reference_within_ties():
  # r = [0, 0, 0, 0, 0, 1, 1, 1] (cut 5); sorted values 0 x4 | 0.2 | 0.5 x2 | 1: the zeros take
  # ranks 0-3 (r = 0), 0.2 rank 4 (0), the two 0.5 ranks 5-6 (1, 1), 1 rank 7 (1).
  f = jnp.array([[0., 0, 0, 0, 1, 0.5, 0.5, 0.2]])
  np.testing.assert_array_equal(np.asarray(extremal.tied_targets(f, jnp.array([5]))),
                                [[0, 0, 0, 0, 1, 1, 1, 0]])
  # All tied (a mask at its start): every pixel's target is the area, 3/8.
  np.testing.assert_allclose(np.asarray(extremal.tied_targets(jnp.ones((1, 8)),
                                                              jnp.array([5]))), 3 / 8)


def test_smoothness_fits_one_disc_in_the_smallest_area():
  # A one-node mask at the derived sigma (and step sigma / 3) is one binary disc that fits
  # the smallest area: between 80% and 100% of 2% of a 150 px chip (torchray's 21 px: 3.7x).
  sigma = extremal.smoothness(0.02, (150, 150))
  step = max(1, round(sigma / 3))
  geo = extremal.mask_geometry((150, 150), step, sigma)
  p = np.zeros(geo.shape_in, np.float32)
  p[geo.shape_in[0] // 2, geo.shape_in[1] // 2] = 1
  mass = float(extremal.generate(jnp.asarray(p), geo).sum())
  assert 0.8 * 450 <= mass <= 450


def _assert_recovers_patch(r, variant, inside=0.75):
  truth = _truth()
  m = r.masks[0, 0]
  # The patch's area of most-kept pixels is exactly the patch (torchray's schedule: IoU 1;
  # 0.88 after 400 steps). The mask is smooth, so its soft rim spills ~20% of its mass
  # outside, and every patch pixel is >= 0.5.
  top = np.zeros(H * W, bool)
  top[np.argsort(-m.ravel(), kind='stable')[:truth.sum()]] = True
  np.testing.assert_array_equal(top.reshape(H, W), truth)
  assert (m[truth] >= 0.5).all() and m[truth].sum() / m.sum() >= inside
  rows, cols = np.mgrid[0:H, 0:W]
  assert abs((m * rows).sum() / m.sum() - 11.5) <= 0.5
  assert abs((m * cols).sum() / m.sum() - 21.5) <= 0.5
  clean = truth.sum()
  kept = r.scores[0, 0]
  assert (kept >= 0.85 * clean) if variant == 'preserve' else (kept <= 0.15 * clean)


def test_extremal_in_the_registry_per_image_targets_and_bad_options():
  fn = _bind(PatchNet(), (3, H, W, 3))
  x = jnp.ones((3, H, W, 3))
  # Three images, two areas, per-image classes: class 1's score is minus the patch's sum, so
  # its preserving mask keeps anything but the patch.
  hm = np.asarray(registry.heatmap('extremal', fn, x, jnp.array([0, 1, 0]),
                                   areas=(0.0625, 0.25), steps=30, step=2, sigma=3.0,
                                   jitter=False, fill_mode='value'))
  assert hm.shape == (3, H, W)
  inside, outside = hm[:, _truth()].mean(axis=1), hm[:, ~_truth()].mean(axis=1)
  assert inside[0] > 3 * outside[0] and inside[2] > 3 * outside[2]
  assert inside[1] < 0.2 * outside[1]
  with pytest.raises(ValueError, match='variant'):
    extremal.extremal_perturbation(fn, x, 0, variant='dual', steps=2)
  with pytest.raises(ValueError, match='areas'):
    extremal.extremal_perturbation(fn, x, 0, areas=(1.5,), steps=2)


def _template_maps(n_per, templates, rng):
  maps, labels = [], []
  for k, (cy, cx) in enumerate(templates):
    yy, xx = np.mgrid[0:H, 0:W]
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0 ** 2))
    for _ in range(n_per):
      maps.append(blob + 0.1 * rng.uniform(size=(H, W)))
      labels.append(k)
  return np.array(maps), np.array(labels)


@pytest.mark.parametrize('templates', [[(8, 8), (24, 24)], [(8, 8), (24, 24), (8, 24)]])
def test_spray_recovers_the_templates_and_counts_them(templates):
  rng = np.random.default_rng(4)
  maps, truth = _template_maps(20, templates, rng)
  perm = rng.permutation(len(maps))
  maps, truth = maps[perm], truth[perm]
  out = spray.spray(maps, np.zeros(len(maps), int), truth, num_classes=len(templates), size=8)
  assert len(out) == 1 and len(out[0].strategies) == len(templates)
  for s in out[0].strategies:
    assert s.class_mix.max() == 1.0 and s.size == 20  # pure, whole clusters
    peak = np.unravel_index(np.argmax(s.mean_map), s.mean_map.shape)
    assert peak == templates[int(np.argmax(s.class_mix))]
    assert len(s.exemplars) == 6 and set(s.exemplars) <= set(s.members)
  assert spray.eigengap_k(out[0].eigenvalues) == len(templates)
  w = spray.knn_affinity(spray.prepare_maps(maps, 8), 10)
  np.testing.assert_array_equal(w, w.T)
  assert (w.sum(axis=1) >= 10).all() and np.trace(w) == 0


def test_causal_check_and_the_sentence():
  fn = _bind(PatchNet(), (1, H, W, 3))
  images = np.random.default_rng(5).uniform(0.5, 1.0, (6, H, W, 3)).astype(np.float32)
  region = _truth()
  check = spray.causal_check(fn, images, np.zeros(6, np.int32), region, n_random=8,
                             fill_mode='value', fill=0.0, bootstrap=200)
  # Removing the patch with fill 0 drops the logit by the patch's whole sum.
  np.testing.assert_allclose(check.drop[0], images[:, PATCH[0], PATCH[1], 0].sum((1, 2)).mean(),
                             rtol=1e-5)
  assert check.beats_random and check.drop[0] > 3 * check.random_drop[0]
  strat = spray.Strategy(1, np.arange(6), 0.62, np.array([0.1, 0.9]), region.astype(float),
                         np.arange(6))
  finding = relies.StrategyFinding(strat, check, 'at or above')
  test = tcav.ConceptTest('sticker', 1, np.full(20, 0.97), np.full(20, 0.5), 1e-9, 2e-9, 1.0)
  s = relies.quotable(relies.select_strategy([finding]), [test], ['below', 'at or above'])
  assert s.startswith("62% of the images predicted 'at or above' share one strategy whose "
                      'region of 6.2% of the chip, at the right eye, drops the logit by')
  assert "concept 'sticker' TCAV 0.97 for 'at or above', p < 0.001." in s
  null = relies.quotable(finding, [], ['below', 'at or above'], chance=True)
  assert null.startswith(relies.CHANCE_CAVEAT)
  cond = relies.quotable(finding, [], ['below', 'at or above'], conditions=True)
  assert cond == relies.CONDITIONS_CAVEAT + ' ' + relies.quotable(finding, [], ['below',
                                                                             'at or above'])
  assert relies.quotable(finding, [], ['below', 'at or above'], chance=True,
                         conditions=True) == null  # at chance, that caveat says more
  assert check.label_excess is None and 'true classes' not in s  # no labels given
  # With the members' true labels: the contrast toward the true class. The toy's outputs are
  # s * [1, -1], so removing the patch drops the class-0 contrast (d0 - d1) by 2 s and the
  # class-1 contrast by -2 s: all labels 0 -> exactly twice the logit's excess (the same
  # forwards and random squares), all labels 1 -> minus twice it (read, but against the labels).
  for lab, sign, clause in ((0, 2.0, ', and removing it lowers the contrast toward the true '
                                     'classes by'),
                            (1, -2.0, 'no evidence that what it reads there is about them')):
    chk = spray.causal_check(fn, images, np.zeros(6, np.int32), region, n_random=8,
                             fill_mode='value', fill=0.0, bootstrap=200,
                             labels=np.full(6, lab, np.int32))
    np.testing.assert_allclose(chk.drop, check.drop, rtol=1e-6)
    np.testing.assert_allclose(chk.label_excess[0], sign * check.excess[0], rtol=1e-5)
    assert chk.informs_labels == (lab == 0)
    said = relies.quotable(relies.StrategyFinding(strat, chk, 'at or above'), [],
                           ['below', 'at or above'])
    assert clause in said and f'{chk.label_excess[0]:.2f} ' in said
  parts = relies.face_parts(150)
  assert relies.describe_region(_disc(parts['left cheek'])) == 'the left cheek'
  assert relies.describe_region(_disc(parts['mouth'])) == 'the mouth'
  # between the eye and the cheek, and between the eyes: their own names
  assert relies.describe_region(_disc((66, 101))) == 'the right cheekbone (under the eye)'
  assert relies.describe_region(_disc((48, 75))) == 'the bridge of the nose (between the eyes)'
  # Two blobs (a mean map inside its region): named by the one holding the peak, here the
  # smaller one on the right jaw, not by the point between them (nearest the right cheek).
  two = 1.0 * _disc(parts['right eye'], r=10) + 3.0 * _disc(parts['right jaw'], r=4)
  assert relies.describe_region(two) == 'the right jaw'
  assert relies.describe_region(two > 0) == 'the right eye'  # a mask: its first pixel's blob


def test_causal_checks_at_several_areas_report_the_most_concentrated_used_region():
  # The toy reads only PATCH (area 1/16). Regions: the patch itself; a region 4x its area that
  # holds it; one of the patch's area elsewhere. Hand answers with fill 0: the first two drop
  # the logit by the patch's whole sum, the third by 0; the reported one is the patch (the
  # same excess on a quarter of the area), and a strategy whose regions all miss is not used.
  fn = _bind(PatchNet(), (1, H, W, 3))
  images = np.random.default_rng(6).uniform(0.5, 1.0, (6, H, W, 3)).astype(np.float32)
  patch = _truth()
  big = np.zeros((H, W), bool)
  big[4:20, 14:30] = True
  away = np.zeros((H, W), bool)
  away[22:30, 0:8] = True
  kw = dict(n_random=8, fill_mode='value', fill=0.0, bootstrap=200, alpha=0.05 / 3)
  checks = spray.causal_checks(fn, images, np.zeros(6, np.int32), np.stack([patch, big, away]),
                               **kw)
  whole = images[:, PATCH[0], PATCH[1], 0].sum((1, 2)).mean()
  np.testing.assert_allclose([c.drop[0] for c in checks], [whole, whole, 0.0], atol=1e-3)
  np.testing.assert_allclose([c.area for c in checks], [1 / 16, 1 / 4, 1 / 16])
  assert [c.beats_random for c in checks] == [True, True, False]
  assert spray.choose_area(checks) == 0
  # The first region's check is the single-region check (the same random squares).
  one = spray.causal_check(fn, images, np.zeros(6, np.int32), patch, **kw)
  np.testing.assert_array_equal(one.excess, checks[0].excess)
  # By hand: a used small region with less excess beats a used big one with more (excess per
  # unit area 1.0 / 0.015 = 67 vs 2.0 / 0.15 = 13); an unused small one does not.
  r = np.zeros((H, W), bool)
  mk = lambda ex, area: spray.CausalCheck(ex, ex, ex, r, area)
  assert spray.choose_area([mk((1.0, 0.2, 1.8), 0.015), mk((2.0, 0.5, 3.5), 0.15)]) == 0
  assert spray.choose_area([mk((1.0, -0.1, 2.1), 0.015), mk((2.0, 0.5, 3.5), 0.15)]) == 1
  # Nothing used: the region with the largest excess lower bound, reported as not used.
  misses = spray.causal_checks(fn, images, np.zeros(6, np.int32), np.stack([away, away.T]),
                               **kw)
  i = spray.choose_area(misses)
  assert not misses[i].beats_random and misses[i].excess[1] == max(c.excess[1] for c in misses)


def _disc(centre, size=150, r=6):
  yy, xx = np.mgrid[0:size, 0:size]
  return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r


def test_concept_folders_read_back_and_bad_folders(tmp_path):
  from PIL import Image

  from gradejax.data import concepts
  a, b = concepts.concept_portrait('sticker', 0, 0), concepts.concept_portrait('sticker', 0, 0)
  np.testing.assert_array_equal(a, b)  # one seed, one image
  assert a.shape == (300, 260, 3) and not np.array_equal(a, concepts.concept_portrait('tag', 0, 0))
  with pytest.raises(ValueError, match='unknown concept'):
    concepts.concept_portrait('hat', 0, 0)
  for name in ('sticker', 'random'):
    (tmp_path / name).mkdir()
    Image.fromarray(a[:150, :150]).save(tmp_path / name / '0000.png')
  got = tcav.read_concept_folders(tmp_path)
  assert sorted(got) == ['random', 'sticker'] and got['sticker'].shape == (1, 150, 150, 3)
  np.testing.assert_allclose(got['sticker'][0], a[:150, :150] / 255.0, atol=1e-6)
  (tmp_path / 'random' / '0000.png').unlink()
  with pytest.raises(ValueError, match='holds no .png'):
    tcav.read_concept_folders(tmp_path)


def test_the_quoted_strategy_is_the_one_relied_on_most():
  # share x mean excess drop: a strategy of every image that barely matters (1.0 x 0.6) loses
  # to one of 57% of its class whose removal costs 1.8 beyond random (1.03); a strategy whose
  # region does not beat a random one is never quoted while a causal one exists.
  def finding(share, size, excess, name):
    region = np.zeros((H, W), bool)
    check = spray.CausalCheck((excess[0] + 0.1, 0.0, 0.0), (0.1, 0.0, 0.2), excess, region, 0.0)
    strat = spray.Strategy(0, np.arange(size), share, np.array([1.0]), region.astype(float),
                           np.arange(min(size, 6)))
    return relies.StrategyFinding(strat, check, name)

  everyone = finding(1.0, 39, (0.6, 0.2, 1.0), 'below')
  most = finding(0.57, 27, (1.8, 1.3, 2.3), 'at or above')
  loud = finding(0.9, 30, (5.0, -0.1, 9.0), 'at or above')  # CI touches 0: not causal
  assert relies.select_strategy([everyone, most, loud]) is most
  assert relies.select_strategy([everyone, loud]) is everyone
  assert relies.select_strategy([loud, finding(0.3, 9, (2.0, -1.0, 4.0), 'x')]) is loud
  assert relies.select_strategy([]) is None
