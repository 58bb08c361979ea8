"""The feature-visualisation command (console script ``gradejax-featurevis``):

  python -m gradejax.featurevis --workdir DIR --layer NAME --units 0:256 --steps 512 ...

Synthesises one image per unit of ``--layer`` (channel mean for spatial taps, the unit itself
for vector taps such as ``logits`` or ``descriptor``), in compiled batches of ``--batch`` units
sharded over all devices, and writes WORKDIR/featurevis/{index.html, grid.png, unit_*.png}.
``--net classifier`` (default) explains the run's trained classifier; ``--net face`` the bare
dlib face ResNet. The library is gradejax.optvis (lucid's optvis: objectives, param, transform,
render, inversion, dataset examples), the page gradejax.report.featurevis_page.
"""
from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple, Sequence

import jax
import numpy as np
from absl import app, logging

from gradejax import batching, distributed, errors, logs, nets, progress
from gradejax import options as optlib
from gradejax.optvis import dataset_examples, inversion, objectives
from gradejax.report import featurevis_page as page
from gradejax.optvis import param as param_lib
from gradejax.optvis import render, transform
from gradejax.options import option


def parse_units(spec: str) -> np.ndarray:
  """'0:8' -> 0..7, '3,5,9' -> those."""
  try:
    if ':' in spec:
      a, b = spec.split(':')
      return np.arange(int(a), int(b))
    return np.array([int(s) for s in spec.split(',') if s.strip()])
  except ValueError:
    raise ValueError(f'--units {spec!r}: give a range like 0:64 or a list like 3,5,9') from None


class Examples(NamedTuple):
  """This process's dataset examples: ``share`` uint8 [n, H, W, 3] = rows ``start..start+n``
  of the ``total`` scanned; ``colour`` the first chips (every process holds them) that the
  colour decorrelation is estimated from."""
  share: np.ndarray
  start: int
  total: int
  colour: np.ndarray


def load(net: str, workdir: str, data_dir: str | None, max_examples: int = 512,
         colour_images: int = 256):
  """-> (ModelFn, :class:`Examples` or None, class names of the logits or []).

  The examples: this process's share (``distributed.split``)
  of the first ``max_examples`` prepared chips (uint8 [n, 150, 150, 3], rows
  ``start..start+n`` of ``total``), read from the TFDS files without the rest, and the first
  ``colour_images`` chips that every process needs for the colour decorrelation, gathered
  from the processes' own shares of them (one process: all read once)."""
  class_names: list[str] = []
  if net == 'face':
    from gradejax.nets import extractor
    module, variables = extractor.load_face_resnet()
  else:
    from gradejax.training import runs
    module, variables, config = runs.load_trained(workdir)
    data_dir = data_dir or config.get('data_dir')
    class_names = [str(c) for c in (config.get('class_names') or [])]
  images = None
  if data_dir:
    from gradejax.data import dataset
    try:
      n = dataset.count(data_dir)
    except (FileNotFoundError, ValueError) as e:
      logging.warning('no dataset examples: %s', e)
    else:
      total, n_colour = min(n, max_examples), min(n, colour_images)
      share, colour = distributed.split(total), distributed.split(n_colour)
      # One read of both shares (they overlap); only this process's images are decoded.
      lo, hi = min(share.start, colour.start), max(share.stop, colour.stop)
      held = dataset.load_arrays(data_dir, slice(lo, hi))['images']
      colour_rows = distributed.gather_rows(held[colour.start - lo:colour.stop - lo], n_colour)
      images = Examples(held[share.start - lo:share.stop - lo], share.start, total,
                        colour_rows)
  return nets.bind(module, variables), images, class_names


def unit_names(layer: str, units: np.ndarray, class_names: list[str]) -> list[str]:
  """'logits' units of the classifier are its classes: 'high (logit 1)'; others 'unit 7'."""
  if layer == 'logits' and class_names:
    return [f'{class_names[u]} (logit {u})' if u < len(class_names) else f'logit {u}'
            for u in units]
  return [f'unit {u}' for u in units]


@dataclasses.dataclass(frozen=True)
class Options:
  """What ``featurevis`` synthesises and how: the source of its flags (gradejax.options)."""
  workdir: str | None = option(None, 'work directory (output goes to WORKDIR/featurevis)',
                               required=True)
  layer: str = option('logits', 'tap to visualise (e.g. logits, extractor/level2)')
  units: str = option('0:8', 'units: a range 0:64 or a list 3,5,9')
  net: str = option('classifier', 'trained classifier or face net', choices=('classifier', 'face'))
  steps: int = option(512, 'Adam steps')
  size: int = option(150, 'image size (the face net needs 150)')
  param: str = option('fourier', 'image parameterisation', choices=('fourier', 'pixel'))
  decorrelate: bool = option(True, 'decorrelated colour (estimated from the data)')
  jitter: int = option(8, 'pad and jitter in px')
  rotate: float = option(5.0, 'max rotation in degrees')
  scale: float = option(0.05, 'max relative scale change')
  diversity: float = option(0.0, 'weight of the diversity term across the batch')
  batch: int = option(64, 'units per compiled batch')
  lr: float = option(0.05, 'Adam learning rate')
  seed: int = option(0, 'PRNG seed')
  top_k: int = option(4, 'dataset examples per unit')
  max_examples: int = option(512, 'dataset images scanned for examples')
  data_dir: str | None = option(None, 'prepared data (default: the run config\'s data_dir)')
  accentuate: int = option(64, 'steps of feature accentuation and caricature from each unit\'s '
                           'top chip (0: none)')
  keep_weight: float = option(10.0, 'accentuation: weight of the distance to the original '
                              'photo at the earliest spatial tap')


def _advance(p: progress.Task, base: int):
  """A render step listener moving ``p`` to ``base + steps done`` (repeats are ignored)."""
  return lambda k: p.update(max(0, base + k - p.done))


def run(o: Options) -> str:
  """Renders ``o.units`` of ``o.layer`` and writes WORKDIR/featurevis; returns its page."""
  units = parse_units(o.units)
  workdir, layer, steps, size, jitter, lr = o.workdir, o.layer, o.steps, o.size, o.jitter, o.lr
  rotate, scale, diversity, decorrelate, param, seed = (o.rotate, o.scale, o.diversity,
                                                        o.decorrelate, o.param, o.seed)
  fn, data, class_names = load(o.net, workdir, o.data_dir, o.max_examples)
  taps = nets.activation_shapes(fn, np.zeros((1, size, size, 3), np.float32))
  if layer not in taps:
    raise ValueError(f'--layer {layer!r} is not a tap of this network; taps: {sorted(taps)}')
  n_units = taps[layer][-1]
  if units.max() >= n_units or units.min() < 0:
    raise ValueError(f'--units: {layer} has {n_units} units (0..{n_units - 1})')
  colour = param_lib.colour_sqrt(data.colour) if data is not None and decorrelate else None
  make = param_lib.fourier if param == 'fourier' else param_lib.pixel
  par = make(size, size, decorrelate=decorrelate, colour_matrix=colour)
  settings = render.Settings(steps=steps, learning_rate=lr, robustness=transform.Robustness(
      pad=jitter, jitter=jitter, scale=(1 - scale, 1 + scale), rotate=rotate))
  batch = min(o.batch, len(units))

  def objective_for(u):
    obj = objectives.channel_batch(layer, u)
    return obj + diversity * objectives.diversity(layer) if diversity > 0 else obj

  key = jax.random.key(seed)
  images, history = [], []
  t0 = time.time()
  starts = range(0, len(units), batch)
  # Steps done, reported from inside the compiled loop; the first call also compiles it.
  with progress.task(f'featurevis: {len(units)} units x {steps} steps (the first batch '
                     f'compiles)', len(starts) * steps, unit='steps') as p:
    for b, s in enumerate(starts):  # equal-sized batches: one compile for all
      chunk = units[s:s + batch]
      chunk_p = batching.pad_to_multiple(chunk, batch)
      with render.step_listener(_advance(p, b * steps)):
        img, hist = render.render_sharded(fn, objective_for, par, chunk_p,
                                          jax.random.fold_in(key, s), settings)
      images.append(np.asarray(img)[:len(chunk)])
      history.append(np.asarray(hist)[:, :len(chunk)])
  images, history = np.concatenate(images), np.concatenate(history, 1)
  top, accents = None, None
  if data is not None:
    share, start, total, _ = data
    top = dataset_examples.top_k_across_processes(fn, share, layer, units, k=o.top_k,
                                                  start=start, total=total)
    # Every process gets the top images from the processes that read them: the page and
    # the accentuations need them, no other image.
    data, top['index'] = dataset_examples.gather_examples(share, start, top['index'])
    if o.accentuate > 0:
      # Two optimisations of o.accentuate steps: the accentuation, then the caricature.
      with progress.task('featurevis: accentuations and caricatures', 2 * o.accentuate,
                         unit='steps') as p:
        seen = {'phase': 0, 'last': 0}

        def listener(k):  # the second optimisation restarts at step 1: count on
          if k < seen['last']:
            seen['phase'] += 1
          seen['last'] = k
          _advance(p, seen['phase'] * o.accentuate)(k)

        with render.step_listener(listener):
          accents = inversion.accentuations(fn, data, layer, units, top,
                                            jax.random.fold_in(key, 1), o.accentuate,
                                            o.keep_weight)
  text = [f'{steps} Adam steps (lr {lr}), {param} parameterisation'
          f'{" with decorrelated colour" if decorrelate else ""}, jitter {jitter} px, rotation '
          f'+-{rotate} deg, scale +-{scale}, diversity {diversity}, seed {seed}; '
          f'{len(jax.devices())} device(s) in {jax.process_count()} process(es); '
          f'{time.time() - t0:.1f} s.']
  if not distributed.is_main():  # every process holds the images; process 0 writes them
    return f'{workdir}/featurevis (written by process 0)'
  out = page.write(f'{workdir}/featurevis', f'Feature visualisation: {layer}', layer, units,
                   images, history, text, data, top,
                   note='Dataset examples are student photos: this page is a local file, do not '
                        'share it.' if top is not None else '',
                   names=unit_names(layer, units, class_names), accents=accents,
                   workdir=workdir if o.net == 'classifier' else None)
  return str(out)


def main(argv: Sequence[str]) -> None:
  del argv
  logs.quiet_libraries()
  distributed.initialize_from_flags()  # a multi-host run, when asked for; before any JAX work
  try:
    out = run(optlib.from_flags(Options))
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if distributed.is_main():
    print(f'wrote {out}')


def command() -> None:
  """The ``gradejax.featurevis`` command: defines its flags, parses argv, runs :func:`main`."""
  distributed.define_flags()
  optlib.define_flags(Options)
  errors.run(main, output_flag='workdir')


if __name__ == '__main__':
  command()
