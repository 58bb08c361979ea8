"""List flags (gradejax.options): items stripped and empty items dropped (issue 22: neither was
tested). absl's own list parser strips command-line items but keeps empty ones; a caller that
sets a list flag's value directly gets neither."""
from __future__ import annotations

import dataclasses
from typing import Sequence

from absl import flags

from gradejax import options
from gradejax.options import option


@dataclasses.dataclass(frozen=True)
class Lists:
  names: Sequence[str] = option(('a', 'b'), 'names')
  sizes: tuple[int, ...] = option((8,), 'sizes')
  maybe: Sequence[str] | None = option(None, 'optional names')


def _values(argv):
  fv = flags.FlagValues()
  options.define_flags(Lists, fv)
  fv(['prog', *argv])
  return fv


def test_list_items_are_stripped_and_empty_items_dropped():
  fv = _values(['--names=saliency,,rise,', '--sizes=12,,24', '--maybe=,'])
  got = options.from_flags(Lists, fv)
  assert got.names == ('saliency', 'rise') and got.sizes == (12, 24)
  assert got.maybe is None  # only empty items: the optional list's default
  fv.names = [' saliency ', ' ', 'rise\t']  # set by a caller, not parsed by absl
  assert options.from_flags(Lists, fv).names == ('saliency', 'rise')
  assert options.from_flags(Lists, _values([])) == Lists()
