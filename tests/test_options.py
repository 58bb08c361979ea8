"""gradejax.options: the commands' flags are made from their option dataclasses (one source)."""
from __future__ import annotations

import dataclasses
import inspect

import pytest
from absl import flags

from gradejax import distributed, options
from gradejax import prepare as prepare_command
from gradejax.data import demo_data, prepare
from gradejax import featurevis as featurevis_cli
from gradejax.options import option
from gradejax import visualize as attribution_report

COMMANDS = [prepare_command.Command, attribution_report.Command, featurevis_cli.Options,
            demo_data.Command, distributed.HostOptions]


def _parsed(cls, argv):
  fv = flags.FlagValues()
  options.define_flags(cls, fv)
  fv(['prog', *argv])
  return fv


@pytest.mark.parametrize('cls', COMMANDS, ids=lambda c: f'{c.__module__}.{c.__name__}')
def test_flags_default_to_the_dataclass(cls):
  # Every flag field becomes a flag; parsing no flag gives back the dataclass's own defaults.
  required = {f.name: 'x' for f in dataclasses.fields(cls) if f.metadata.get('required')}
  fv = _parsed(cls, [f'--{k}={v}' for k, v in required.items()])
  flag_fields = [f.name for f in dataclasses.fields(cls) if f.metadata.get('flag')]
  assert set(flag_fields) <= set(fv)
  for f in dataclasses.fields(cls):
    assert f.metadata.get('help'), f'{cls.__name__}.{f.name} has no help text'
  got = options.from_flags(cls, fv)
  assert got == dataclasses.replace(cls(), **required)


def test_values_parse_to_the_field_types():
  fv = _parsed(attribution_report.Command, [
      '--workdir=w', '--methods=saliency,rise', '--patches=12,24', '--road_fractions=0.1,0.5',
      '--localisation_methods=', '--nolabel_randomization', '--fill_mode=blur', '--stride=4'])
  o = options.from_flags(attribution_report.Command, fv, valid_fold=3)
  assert o.methods == ('saliency', 'rise')
  assert o.patches == (12, 24) and o.road_fractions == (0.1, 0.5)
  assert o.localisation_methods is None  # empty list: "the default" of an optional list
  assert o.label_randomization is False and o.fill_mode == 'blur' and o.stride == 4
  assert o.valid_fold == 3  # flag=False fields are set by the command
  assert 'valid_fold' not in _parsed(attribution_report.Command, ['--workdir=w'])
  narrowed = options.narrow(attribution_report.Options, o)
  assert type(narrowed) is attribution_report.Options and narrowed.patches == (12, 24)


def test_parse_and_choices_reject_bad_values_naming_the_flag():
  assert options.from_flags(prepare_command.Command, _parsed(
      prepare_command.Command, ['--workbook=w', '--pivot=median'])).pivot == 'median'
  assert options.from_flags(prepare_command.Command, _parsed(
      prepare_command.Command, ['--workbook=w', '--pivot=4.5'])).pivot == 4.5
  with pytest.raises(flags.IllegalFlagValueError, match='--pivot must be a grade'):
    _parsed(prepare_command.Command, ['--workbook=w', '--pivot=high'])
  with pytest.raises(flags.IllegalFlagValueError, match='hog'):
    _parsed(prepare_command.Command, ['--workbook=w', '--detector=haar'])
  with pytest.raises(flags.IllegalFlagValueError, match='workbook'):
    _parsed(prepare_command.Command, [])  # required
  # Library callers bypass absl: check_choices names the field.
  with pytest.raises(ValueError, match='--no_face must be one of skip, centre'):
    options.check_choices(prepare.Options(no_face='center'))


def test_demo_data_defaults_come_from_the_library_function():
  sig = inspect.signature(demo_data.write_demo_workbook).parameters
  for name in ('n', 'seed', 'cue_strength', 'cue_kind', 'cue_shape'):
    assert getattr(demo_data.Command(), name) == sig[name].default


def test_unsupported_type_needs_a_parser():
  @dataclasses.dataclass
  class Bad:
    pair: dict = option(None, 'no flag type for a dict')

  with pytest.raises(TypeError, match='needs parse='):
    options.define_flags(Bad, flags.FlagValues())


def test_options_of_a_command_run_as_main_under_a_profiler():
  # `python -m cProfile -m gradejax.visualize`: the command's module runs as __main__, whose
  # sys.modules entry is cProfile's; its own annotations (Sequence, imported there) and its
  # base's (another module) must still resolve into flags.
  source = ('from __future__ import annotations\n'
            'import dataclasses\n'
            'from typing import Sequence\n'
            'from gradejax.options import option\n'
            'from gradejax.attribution.battery import Options\n'
            '@dataclasses.dataclass\n'
            'class Command(Options):\n'
            '  extra: Sequence[str] = option(("a", "b"), "a list")\n')
  ns = {'__name__': '__main__'}  # sys.modules['__main__'] is pytest's, as cProfile's would be
  import sys
  assert 'Sequence' not in vars(sys.modules['__main__'])
  exec(compile(source, '<main>', 'exec'), ns)  # noqa: S102
  cls = ns['Command']
  fv = _parsed(cls, ['--extra=x,y', '--methods=saliency'])
  got = options.from_flags(cls, fv)
  assert got.extra == ('x', 'y') and tuple(got.methods) == ('saliency',)
  assert got.steps == 32  # the base's default, its int annotation resolved in its own module
