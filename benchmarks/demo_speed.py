"""Step 1 of the demo (the workbook's portraits and the concept photos), drawn by the reference
portraits module of a commit (default d604e55, read with ``git show`` into a temporary module)
and by this tree's, side by side in one process (image by image, alternating which goes first,
so the shared machine's changing load falls on both): seconds, the ratio, and a sha1 per image,
which must all be equal. Counts only the drawing (one process each; ``demo_data_workers.py`` times
the worker processes on top).

  python benchmarks/demo_speed.py [--n 430] [--concept_images 20] [--reference d604e55]
"""
from __future__ import annotations

import hashlib
import importlib.util
import pathlib
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from gradejax.data import concepts, demo_data, portraits

N = flags.DEFINE_integer('n', 430, 'workbook rows (seed 0, cue strength 0.8, as demo.sh)')
CONCEPT_IMAGES = flags.DEFINE_integer('concept_images', 20, 'photos per concept (random: 3x)')
REFERENCE = flags.DEFINE_string('reference', 'd604e55', 'commit of the reference portraits.py')


def _reference_module(commit: str, tmp: pathlib.Path):
  root = pathlib.Path(__file__).resolve().parents[1]
  src = subprocess.run(['git', 'show', f'{commit}:gradejax/data/portraits.py'], cwd=root,
                       check=True, capture_output=True, text=True).stdout
  path = tmp / 'portraits_reference.py'
  path.write_text(src)
  spec = importlib.util.spec_from_file_location('portraits_reference', path)
  mod = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = mod  # dataclasses look their module up there
  spec.loader.exec_module(mod)
  return mod


def _jobs() -> list:
  """(what, args) of every demo row (seed 0, cue strength 0.8) and concept photo."""
  grades = demo_data.demo_grades(N.value, 0)
  cues = demo_data.cue_draws(grades, 0, 0.8)
  jobs = [('row', (0, r, bool(cues[r]))) for r in range(N.value)]
  folders = [(c, CONCEPT_IMAGES.value) for c in concepts.CONCEPTS]
  folders.append(('random', 3 * CONCEPT_IMAGES.value))
  return jobs + [('concept', (c, 0, k)) for c, count in folders for k in range(count)]


def _draw(module, what: str, args: tuple) -> tuple[float, str]:
  """Seconds and sha1 of one image drawn by ``module`` (patched into demo_data and concepts)."""
  demo_data.portraits = concepts.portraits = module
  try:
    t0 = time.perf_counter()
    image = (demo_data.render_row(*args)[0] if what == 'row' else
             concepts.concept_portrait(*args))
    return time.perf_counter() - t0, hashlib.sha1(image.tobytes()).hexdigest()
  finally:
    demo_data.portraits = concepts.portraits = portraits


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    ref = _reference_module(REFERENCE.value, pathlib.Path(tmp))
    # Image by image, alternating which goes first, so a change of the machine's load (it is
    # shared) falls on both alike.
    t_ref = t_new = 0.0
    d_ref, d_new = [], []
    for i, (what, args) in enumerate(_jobs()):
      order = [(ref, d_ref), (portraits, d_new)][::1 if i % 2 else -1]
      for module, digests in order:
        t, d = _draw(module, what, args)
        digests.append(d)
        if module is ref:
          t_ref += t
        else:
          t_new += t
  same = d_ref == d_new
  print(f'{len(d_new)} portraits (demo rows + concept photos): reference {REFERENCE.value} '
        f'{t_ref:.1f} s, this tree {t_new:.1f} s, ratio {t_ref / t_new:.2f}x; '
        f'{sum(a == b for a, b in zip(d_ref, d_new))}/{len(d_new)} images byte-identical')
  sys.exit(0 if same else 1)


if __name__ == '__main__':
  app.run(main)
