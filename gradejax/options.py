"""Command options: one frozen dataclass per command is the single source of its flags.

Every field of an options dataclass declares, with :func:`option`, its default, its help text
and (optionally) its allowed values or a parser. :func:`define_flags` turns the fields into absl
flags of the same names and defaults; :func:`from_flags` builds the dataclass back from the
parsed flags. A default therefore lives in one place: a library caller gets it from the
dataclass, the command line from the flag made from that field, and the two cannot drift.

Run configurations (what is trained and evaluated, versioned with the run in
``WORKDIR/config.json``) stay ml_collections files (``--config configs/NAME.py``); these
dataclasses hold the per-invocation options of the other commands (prepare, visualize,
featurevis, demo_data, the multi-host flags).

  @dataclasses.dataclass(frozen=True)
  class Options:
    steps: int = option(32, 'integrated-gradients steps')
    fill_mode: str = option('inpaint', 'what a removed region becomes',
                            choices=('inpaint', 'blur', 'value'))
    patches: tuple[int, ...] = option((8, 16, 32), 'patch sizes (px)')  # --patches 8,16,32

Types map to flags as: bool -> DEFINE_boolean, int -> DEFINE_integer, float -> DEFINE_float,
str -> DEFINE_string (DEFINE_enum with ``choices``), tuple/Sequence of X -> DEFINE_list with
every item converted to X; ``X | None`` as X with default None. Any other type needs ``parse``
(the flag is then a string, checked at parse time).
"""
from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import sys
import types
import typing
from typing import Any, Callable, TypeVar

T = TypeVar('T')

_SCALARS = {bool, int, float, str}


def option(default: Any, help: str, *, choices: typing.Sequence[str] | None = None,
           parse: Callable[[str], Any] | None = None, required: bool = False,
           flag: bool = True) -> Any:
  """A dataclass field that is also a command-line flag (``flag=False``: a field the command
  sets itself, e.g. from the run's config). ``parse`` turns the flag's string into the field's
  value (raising ValueError with a message for bad input); ``required``: the flag must be
  given (the field's default is then only for library callers)."""
  return dataclasses.field(default=default, metadata={
      'help': help, 'choices': tuple(choices) if choices else None, 'parse': parse,
      'required': required, 'flag': flag})


def _flag_fields(cls) -> list[dataclasses.Field]:
  return [f for f in dataclasses.fields(cls) if f.metadata.get('flag', False)]


def _kind(tp: Any) -> tuple[str, type]:
  """('scalar', type) or ('list', item type) of a field's annotation; Optional unwrapped."""
  origin, args = typing.get_origin(tp), typing.get_args(tp)
  if origin in (typing.Union, types.UnionType):
    rest = [a for a in args if a is not type(None)]
    if len(rest) == 1:
      return _kind(rest[0])
    return 'other', str
  if origin in (tuple, list, collections.abc.Sequence):
    item = args[0] if args else str
    if item not in _SCALARS - {bool}:
      return 'other', str
    return 'list', item
  if tp in _SCALARS:
    return 'scalar', tp
  return 'other', str


def _hints(cls) -> dict[str, Any]:
  """Field name -> evaluated annotation, each class of the MRO in its own module's names
  (a command's options extend a library's, defined in another module). typing's names are
  the fallback: a command run under ``python -m cProfile -m gradejax.visualize`` is module
  ``__main__``, whose entry in sys.modules is then cProfile's, not the command's."""
  hints: dict[str, Any] = {}
  for c in reversed(cls.__mro__):
    module = sys.modules.get(c.__module__)
    ns = {**vars(typing), **(vars(module) if module is not None else {})}
    for name, a in c.__dict__.get('__annotations__', {}).items():
      hints[name] = eval(a, ns) if isinstance(a, str) else a  # noqa: S307 - our own source
  return hints


def define_flags(cls, flag_values=None) -> None:
  """Defines one absl flag per flag field of dataclass ``cls`` (see the module docstring)."""
  from absl import flags
  fv = flag_values if flag_values is not None else flags.FLAGS
  hints = _hints(cls)
  # Flags belong to the program being run, so that its --help lists them.
  kw = {'flag_values': fv, 'module_name': sys.argv[0] if sys.argv and sys.argv[0] else None}
  for f in _flag_fields(cls):
    kind, typ = _kind(hints[f.name])
    meta, default, name = f.metadata, f.default, f.name
    help_ = meta['help']
    if meta['parse'] is not None or kind == 'other':
      if meta['parse'] is None:
        raise TypeError(f'{cls.__name__}.{name}: type {hints[name]} needs parse=')
      flags.DEFINE_string(name, None if default is None else str(default), help_, **kw)
      parse = meta['parse']

      def check(value, parse=parse):
        try:
          if value is not None:
            parse(value)
        except ValueError as e:  # absl then exits naming the flag and this message
          raise flags.ValidationError(str(e)) from None
        return True
      flags.register_validator(name, check, flag_values=fv)
    elif kind == 'list':
      flags.DEFINE_list(name, None if default is None else [str(v) for v in default], help_, **kw)
    elif typ is bool:
      flags.DEFINE_boolean(name, default, help_, **kw)
    elif typ is int:
      flags.DEFINE_integer(name, default, help_, **kw)
    elif typ is float:
      flags.DEFINE_float(name, default, help_, **kw)
    elif meta['choices']:
      flags.DEFINE_enum(name, default, list(meta['choices']), help_, **kw)
    else:
      flags.DEFINE_string(name, default, help_, **kw)
    if meta['required']:
      flags.mark_flag_as_required(name, flag_values=fv)


def from_flags(cls: type[T], flag_values=None, **overrides) -> T:
  """The dataclass ``cls`` built from parsed flags (those :func:`define_flags` made) and
  ``overrides`` (the fields a command sets itself)."""
  from absl import flags
  fv = flag_values if flag_values is not None else flags.FLAGS
  hints = _hints(cls)
  values = {}
  for f in _flag_fields(cls):
    if f.name in overrides:
      continue
    kind, typ = _kind(hints[f.name])
    v = getattr(fv, f.name)
    if v is None:
      pass
    elif f.metadata['parse'] is not None:
      v = f.metadata['parse'](v)
    elif kind == 'list':
      v = tuple(typ(s.strip()) for s in v if s.strip())
      if not v and f.default is None:
        v = None  # an empty list means "the default" of an optional list
    values[f.name] = v
  return cls(**values, **overrides)


def narrow(cls: type[T], wider: Any, **overrides) -> T:
  """The ``cls`` part of ``wider`` (a dataclass holding at least ``cls``'s fields, e.g. a
  command's options that extend the library's)."""
  names = [f.name for f in dataclasses.fields(cls) if f.init]
  return cls(**{n: getattr(wider, n) for n in names if n not in overrides}, **overrides)


def default_of(fn: Callable, name: str) -> Any:
  """The default of parameter ``name`` of ``fn``: lets a command's dataclass take its
  defaults from the library function it calls, instead of repeating them."""
  default = inspect.signature(fn).parameters[name].default
  if default is inspect.Parameter.empty:
    raise TypeError(f'{fn.__qualname__}({name}) has no default')
  return default


def check_choices(obj: Any) -> None:
  """ValueError naming the flag if a field with ``choices`` holds another value (for library
  callers, who bypass absl's enum check)."""
  for f in dataclasses.fields(obj):
    allowed = f.metadata.get('choices')
    if allowed and getattr(obj, f.name) not in allowed:
      raise ValueError(f'--{f.name} must be one of {", ".join(allowed)}; '
                       f'got {getattr(obj, f.name)!r}')
