"""python -m gradejax.featurevis --workdir DIR --layer NAME --units 0:256 --steps 512 ...

Synthesises one image per unit of ``--layer`` (channel mean for spatial taps, the unit itself
for vector taps such as ``logits`` or ``descriptor``), in compiled batches of ``--batch`` units
sharded over all devices, and writes WORKDIR/featurevis/{index.html, grid.png, unit_*.png}.
``--net classifier`` (default) explains the run's trained classifier; ``--net face`` the bare
dlib face ResNet.
"""
from __future__ import annotations

import time
from typing import Sequence

import jax
import numpy as np
from absl import app, flags, logging

from gradejax import logs
from gradejax import batching, nets
from gradejax.featurevis import dataset_examples, objectives
from gradejax.report import featurevis_page as page
from gradejax.featurevis import param as param_lib
from gradejax.featurevis import render, transform


def parse_units(spec: str) -> np.ndarray:
  """'0:8' -> 0..7, '3,5,9' -> those."""
  try:
    if ':' in spec:
      a, b = spec.split(':')
      return np.arange(int(a), int(b))
    return np.array([int(s) for s in spec.split(',') if s.strip()])
  except ValueError:
    raise ValueError(f'--units {spec!r}: give a range like 0:64 or a list like 3,5,9') from None


def load(net: str, workdir: str, data_dir: str | None):
  """-> (ModelFn, images uint8 [N,150,150,3] or None, a note)."""
  if net == 'face':
    from gradejax.nets import extractor
    module, variables = extractor.load_face_resnet()
  else:
    from gradejax.training import runs
    module, variables, config = runs.load_trained(workdir)
    data_dir = data_dir or config.get('data_dir')
  images = None
  if data_dir:
    from gradejax.data import dataset
    try:
      images = dataset.load_arrays(data_dir)['images']
    except (FileNotFoundError, ValueError) as e:
      logging.warning('no dataset examples: %s', e)
  return nets.bind(module, variables), images


def run(workdir: str, layer: str, units: np.ndarray, *, net: str = 'classifier',
        steps: int = 512, size: int = 150, param: str = 'fourier', decorrelate: bool = True,
        jitter: int = 8, rotate: float = 5.0, scale: float = 0.05, diversity: float = 0.0,
        batch: int = 64, lr: float = 0.05, seed: int = 0, top_k: int = 4,
        max_examples: int = 512, data_dir: str | None = None) -> str:
  fn, data = load(net, workdir, data_dir)
  taps = nets.activation_shapes(fn, np.zeros((1, size, size, 3), np.float32))
  if layer not in taps:
    raise ValueError(f'--layer {layer!r} is not a tap of this network; taps: {sorted(taps)}')
  n_units = taps[layer][-1]
  if units.max() >= n_units or units.min() < 0:
    raise ValueError(f'--units: {layer} has {n_units} units (0..{n_units - 1})')
  colour = param_lib.colour_sqrt(data[:256]) if data is not None and decorrelate else None
  make = param_lib.fourier if param == 'fourier' else param_lib.pixel
  par = make(size, size, decorrelate=decorrelate, colour_matrix=colour)
  settings = render.Settings(steps=steps, learning_rate=lr, robustness=transform.Robustness(
      pad=jitter, jitter=jitter, scale=(1 - scale, 1 + scale), rotate=rotate))
  batch = min(batch, len(units))

  def objective_for(u):
    obj = objectives.channel_batch(layer, u)
    return obj + diversity * objectives.diversity(layer) if diversity > 0 else obj

  key = jax.random.key(seed)
  images, history = [], []
  t0 = time.time()
  for s in range(0, len(units), batch):  # equal-sized batches: one compile for all
    chunk = units[s:s + batch]
    chunk_p = batching.pad_to_multiple(chunk, batch)
    img, hist = render.render_sharded(fn, objective_for, par, chunk_p,
                                      jax.random.fold_in(key, s), settings)
    images.append(np.asarray(img)[:len(chunk)])
    history.append(np.asarray(hist)[:, :len(chunk)])
    logging.info('units %d-%d of %d: %.1f s', s, s + len(chunk) - 1, len(units), time.time() - t0)
  images, history = np.concatenate(images), np.concatenate(history, 1)
  top = None
  if data is not None:
    data = data[:max_examples]
    top = dataset_examples.top_k(fn, data, layer, units, k=top_k)
  text = [f'{steps} Adam steps (lr {lr}), {param} parameterisation'
          f'{" with decorrelated colour" if decorrelate else ""}, jitter {jitter} px, rotation '
          f'+-{rotate} deg, scale +-{scale}, diversity {diversity}, seed {seed}; '
          f'{len(jax.devices())} device(s); {time.time() - t0:.1f} s.']
  out = page.write(f'{workdir}/featurevis', f'Feature visualisation: {layer}', layer, units,
                   images, history, text, data, top,
                   note='Dataset examples are student photos: this page is a local file, do not '
                        'share it.' if top is not None else '')
  return str(out)


def main(argv: Sequence[str]) -> None:
  del argv
  logs.quiet_libraries()
  f = flags.FLAGS
  out = run(f.workdir, f.layer, parse_units(f.units), net=f.net, steps=f.steps, size=f.size,
            param=f.param, decorrelate=f.decorrelate, jitter=f.jitter, rotate=f.rotate,
            scale=f.scale, diversity=f.diversity, batch=f.batch, lr=f.lr, seed=f.seed,
            top_k=f.top_k, max_examples=f.max_examples, data_dir=f.data_dir)
  print(f'wrote {out}')


def _define_flags() -> None:
  flags.DEFINE_string('workdir', None, 'work directory (output goes to WORKDIR/featurevis)',
                      required=True)
  flags.DEFINE_string('layer', 'logits', 'tap to visualise (e.g. logits, extractor/level2)')
  flags.DEFINE_string('units', '0:8', 'units: a range 0:64 or a list 3,5,9')
  flags.DEFINE_enum('net', 'classifier', ['classifier', 'face'], 'trained classifier or face net')
  flags.DEFINE_integer('steps', 512, 'Adam steps')
  flags.DEFINE_integer('size', 150, 'image size (the face net needs 150)')
  flags.DEFINE_enum('param', 'fourier', ['fourier', 'pixel'], 'image parameterisation')
  flags.DEFINE_boolean('decorrelate', True, 'decorrelated colour (estimated from the data)')
  flags.DEFINE_integer('jitter', 8, 'pad and jitter in px')
  flags.DEFINE_float('rotate', 5.0, 'max rotation in degrees')
  flags.DEFINE_float('scale', 0.05, 'max relative scale change')
  flags.DEFINE_float('diversity', 0.0, 'weight of the diversity term across the batch')
  flags.DEFINE_integer('batch', 64, 'units per compiled batch')
  flags.DEFINE_float('lr', 0.05, 'Adam learning rate')
  flags.DEFINE_integer('seed', 0, 'PRNG seed')
  flags.DEFINE_integer('top_k', 4, 'dataset examples per unit')
  flags.DEFINE_integer('max_examples', 512, 'dataset images scanned for examples')
  flags.DEFINE_string('data_dir', None, 'prepared data (default: the run config\'s data_dir)')


def command() -> None:
  """The ``gradejax.featurevis`` command: defines its flags, parses argv, runs :func:`main`."""
  _define_flags()
  app.run(main)


if __name__ == '__main__':
  command()
