"""The report CLI end to end on a toy work directory: a toy nets.py model, a real prepared-data
folder in the contract's format (chips, manifest.csv, TFDS built by gradejax.dataset), the
demo's truth.csv and an eval verdict; outputs read back with Pillow and the stdlib."""
import base64
import csv
import io
import json
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gradejax.data import dataset, manifest
from gradejax import nets
from gradejax import visualize
from gradejax.attribution import localisation, registry

SIZE = 16
CLASSES = ('fail', 'pass')


class ToyClassifier(nn.Module):
  """conv -> relu (tap 'features') -> global mean (tap 'pooled') -> linear, 2 classes."""

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    x = nets.tap(self, 'features', relu(nn.Conv(4, (3, 3))(images)))
    x = nets.tap(self, 'pooled', jnp.mean(x, axis=(1, 2)))
    return nets.tap(self, 'logits', nn.Dense(len(CLASSES))(x))


def toy_cue_mask(box, chip_affine, size):
  """Stand-in for demo_data.cue_mask_in_chip with the contract's arguments: the box's corners
  mapped by the (here axis-aligned) chip affine, pixel centres inside are True."""
  a = np.asarray(chip_affine, float).reshape(2, 3)
  x0, y0 = a @ [box[0], box[1], 1]
  x1, y1 = a @ [box[2], box[3], 1]
  yy, xx = np.mgrid[:size, :size] + 0.5
  return (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)


@pytest.fixture(scope='module')
def toy_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('run')
  data = root / 'data'
  rng = np.random.default_rng(0)
  entries, truth = [], []
  for i in range(6):
    sid, label = f's{i:02d}', i % 2
    chip = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    rel = f'chips/{CLASSES[label]}/{sid}.png'
    (data / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(chip).save(data / rel)
    # Photo pixels -> chip pixels: scale 0.5, shift (-2, -4).
    entries.append(manifest.Entry(source_row=i + 2, id=sid, grade=3.5 + label, status='used',
                                  label=label, class_name=CLASSES[label], file=rel, fold=i % 3,
                                  face_box=(0, 0, 40, 40), detector_score=1.0,
                                  chip_affine=np.array([[0.5, 0, -2], [0, 0.5, -4]])))
    truth.append({'id': sid, 'grade': 3.5 + label, 'cue': label, 'cue_box': '8 12 20 24'})
  manifest.write(data / 'manifest.csv', entries)
  with open(data / 'truth.csv', 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=['id', 'grade', 'cue', 'cue_box'])
    w.writeheader()
    w.writerows(truth)
  dataset.build(data, CLASSES, chip_size=SIZE)
  arrays = dataset.load_arrays(data)
  work = root / 'work'
  (work / 'eval').mkdir(parents=True)
  (work / 'eval' / 'verdict.json').write_text(json.dumps(
      {'verdict': 'no evidence that grades are predictable', 'cv': {'auc': 0.51}}))
  (work / 'featurevis').mkdir()
  (work / 'featurevis' / 'index.html').write_text('<html></html>')
  module = ToyClassifier()
  variables = module.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  return work, data, module, variables, arrays


def test_report_end_to_end(toy_run):
  work, data, module, variables, arrays = toy_run
  opts = visualize.Options(methods=tuple(registry.METHODS), images='s01,s02,s03', steps=4,
                           n_samples=2, patch=4, stride=4, faithfulness_steps=4,
                           rise_masks=16, rise_cells=4, segments=4, shap_samples=8,
                           patches=(4, 8), bootstrap=50, causal_size=4, causal_random=2,
                           road_fractions=(0.1, 0.5))
  path = visualize.make_report(work, module, variables, arrays, data, opts,
                               cue_mask_fn=toy_cue_mask)
  assert path == work / 'report' / 'index.html'
  text = path.read_text(encoding='utf-8')
  assert 'photos of students' in text and 'local file' in text
  assert 'no evidence that grades are predictable' in text
  assert '<details><summary>Raw eval/verdict.json</summary>' in text  # the JSON, folded
  assert 'href="../featurevis/index.html"' in text
  assert not re.search(r'(src|href)="(https?:)?//', text)
  assert 'skipped' not in text  # every method ran, CAM included (the head is linear)
  # Every image x method overlay exists as a real PNG; the report inlines the per-image grids.
  for r in range(3):
    for m in registry.METHODS:
      png = Image.open(work / 'report' / 'overlays' / f'img{r:02d}_{m}.png')
      assert png.format == 'PNG' and png.height >= 150
  grids = re.findall(r'alt="image #\d[^"]*" src="data:image/png;base64,([^"]+)"', text)
  assert len(grids) == 3
  inline = np.asarray(Image.open(io.BytesIO(base64.b64decode(grids[0]))))
  np.testing.assert_array_equal(inline, np.asarray(Image.open(work / 'report' / 'grid_img00.png')))
  assert (work / 'report' / 'grid_all.png').is_file()
  # Sanity rows for each pixel-map method and each re-initialised subtree (Dense first).
  for m in registry.METHODS:
    if m != 'region_class':
      assert f'<td class="text">{m}</td><td class="text">+ Dense_0</td>' in text
  assert 'deletion AUC' in text
  # Localisation: the cue images among s01..s03 are s01 and s03 (label 1); the box maps to chip
  # x in [2, 8), y in [2, 8); check one method's mass-inside against the measure itself.
  assert 'Localisation of the planted cue' in text and 'mass inside' in text
  x = arrays['images'][[1, 3]].astype(np.float32) / 255
  fn = nets.bind(module, variables)
  t = np.argmax(np.asarray(fn(x)[0]), 1)
  heat = np.asarray(registry.heatmap('saliency', fn, x, t))
  mask = toy_cue_mask((8, 12, 20, 24), [[0.5, 0, -2], [0, 0.5, -4]], SIZE)
  assert mask.sum() == 36
  mass = np.nanmean(localisation.mass_inside(heat, np.stack([mask, mask])))
  row = re.search(r'<td class="text">saliency</td><td>([0-9.]+)</td><td>([0-9.]+)</td>'
                  r'<td class="text">2</td>', text)
  assert row and abs(float(row.group(1)) - mass) < 1e-3
  # Over the held-out fold (valid_fold 0: s00, s03; s03 carries the cue), with CIs.
  assert 'all 1 cue-bearing images of the held-out fold 0 (2 images in the fold)' in text
  x3 = arrays['images'][[3]].astype(np.float32) / 255
  t3 = np.argmax(np.asarray(fn(x3)[0]), 1)
  m3 = localisation.mass_inside(np.asarray(registry.heatmap('saliency', fn, x3, t3)), mask[None])
  row = re.search(r'<td class="text">saliency</td><td class="text">1</td>'
                  r'<td class="text">([0-9.]+) \[([0-9.]+), ([0-9.]+)\]</td>', text)
  assert row and abs(float(row.group(1)) - m3[0]) < 1e-3 and row.group(2) == row.group(1)
  assert 'Causal check' in text and '(the planted cue itself)' in text
  assert 'Methods ranked' in text and 'ROAD MoRF AUC' in text


def test_report_without_truth_or_verdict_says_why(toy_run, tmp_path):
  _, data, module, variables, arrays = toy_run
  opts = visualize.Options(methods=('saliency',), images='2', sanity_images=1,
                           faithfulness_steps=2, truth=str(tmp_path / 'none.csv'))
  text = visualize.make_report(tmp_path, module, variables, arrays, data, opts,
                               cue_mask_fn=toy_cue_mask).read_text(encoding='utf-8')
  assert 'Localisation not measured: no truth.csv' in text
  assert 'No eval/verdict.json yet' in text
  assert 'No feature visualisation in this work directory yet.' in text


def test_image_selection_errors(toy_run):
  arrays = toy_run[4]
  np.testing.assert_array_equal(visualize.select(arrays, '4'), [0, 1, 2, 3])
  np.testing.assert_array_equal(visualize.select(arrays, 's05, s00'), [5, 0])
  with pytest.raises(ValueError, match=r"\['nobody'\] are not in the prepared data"):
    visualize.select(arrays, 's01,nobody')
  with pytest.raises(ValueError, match='unknown attribution method'):
    visualize.make_report(toy_run[0], toy_run[2], toy_run[3], arrays,
                          opts=visualize.Options(methods=('lime_typo',)))


class EnergyModel(nn.Module):
  """logits = Dense(20 * mean(x^2)): saliency is 2 k_c x / N, so |map| ranks like |x| whatever
  the params: a model whose maps cannot change under randomisation."""

  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    sq = nets.tap(self, 'energy', images ** 2)  # a spatial tap for default_layer
    return nets.tap(self, 'logits', nn.Dense(len(CLASSES))(20 * jnp.mean(sq, (1, 2, 3))[:, None]))


def test_report_flags_a_failed_sanity_check_and_keeps_deletion_and_insertion_apart(toy_run,
                                                                                   tmp_path):
  _, data, _, _, arrays = toy_run
  module = EnergyModel()
  variables = module.init(jax.random.key(1), jnp.zeros((1, SIZE, SIZE, 3)))
  opts = visualize.Options(methods=('saliency',), images='3', sanity_images=2,
                                    faithfulness_steps=4, truth=str(tmp_path / 'none.csv'))
  text = visualize.make_report(tmp_path, module, variables, arrays, data, opts
                                        ).read_text(encoding='utf-8')
  # Full randomisation leaves |map| ranks at 1: the report says so in the flagged column.
  assert re.search(r'<td class="text">\+ Dense_0</td>(<td>[^<]*</td>){3}<td class="flag">yes'
                   r'</td>', text)
  # Deletion and insertion AUCs, each recomputed from its own curve.
  x = arrays['images'][:3].astype(np.float32) / 255
  fn = nets.bind(module, variables)
  t = np.argmax(np.asarray(fn(x)[0]), 1)
  heat = registry.heatmap('saliency', fn, x, t)
  from gradejax.attribution import faithfulness
  want = [float(np.mean(faithfulness.auc(faithfulness.curve(fn, x, t, heat, mode=m, steps=4))))
          for m in ('deletion', 'insertion')]
  assert abs(want[0] - want[1]) > 0.01  # far enough apart for a swap to show
  # Faithfulness row: deletion AUC, insertion AUC, their difference, then the ROAD columns.
  row = re.search(r'<td class="text">saliency</td><td>([0-9.-]+)</td><td>([0-9.-]+)</td>'
                  r'<td>([0-9.e-]+)</td>(<td>[0-9.e-]+</td>){3}</tr>', text)
  assert row, 'no faithfulness row'
  np.testing.assert_allclose([float(row.group(1)), float(row.group(2))], want, atol=2e-3)
