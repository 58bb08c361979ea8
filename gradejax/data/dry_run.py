"""``prepare --check``: the row -> photo mapping and every problem, without detecting faces or
writing anything, for a researcher to verify before a long run."""
from __future__ import annotations

import collections
import os
import pathlib

from gradejax.data import images, parallel, workbook
from gradejax.data.manifest import Entry
from gradejax.data.prepare import (Options, _check_options, _duplicate_photos, _ids_and_grades,
                                   read_table)


def check(workbook_path: str | os.PathLike, options: Options = Options(),
          images_dir: str | os.PathLike | None = None) -> tuple[list[Entry], str]:
  """Dry run: reads the workbook and decodes the photos without detecting faces or writing.

  Returns the entries (``status`` 'used' means "ready for face detection") and a text table of
  the row -> photo mapping with every problem. Photos with the same decoded pixels in several
  rows skip those rows as ``duplicate_photo``, as the real run does.
  """
  o = options
  _check_options(o)
  table = read_table(workbook_path, o, images_dir)
  entries = _ids_and_grades(table, o)
  rows = {r.source_row: r for r in table.rows}
  described: dict[int, str] = {}
  todo, digests = [], []
  for e in entries:
    p = rows[e.source_row].photo
    if p is None:
      continue
    where = getattr(p, 'anchor', '') or (p.part if p.placement == 'file' else
                                         f'{workbook.column_label(p.col)}{p.row}')
    data, reason = parallel.read_source(parallel.photo_source(p))
    image = None
    if data is not None:
      image, reason = images.decode_photo(data, min_side=o.min_side)
    size = f'{image.shape[1]}x{image.shape[0]}' if image is not None else '?'
    described[e.source_row] = f'{where} {p.placement} {size}'
    if e.status == 'used':
      if reason:
        e.status, e.reason = 'skipped', reason
      else:
        todo.append(e)
        digests.append(parallel.pixel_digest(image))
  _duplicate_photos(todo, digests)
  lines = [f'{pathlib.Path(workbook_path).name}: sheet {table.sheet!r}, header row '
           f'{table.header_row}, columns '
           + ', '.join(f'{k}={workbook.column_label(v)}' for k, v in table.columns.items()),
           f'{"row":>6}  {"id":<14}{"photo":<30}outcome']
  for e in entries:
    row = rows[e.source_row]
    photo = described.get(e.source_row) or (f'{row.photos_in_row} picture(s)'
                                            if row.photos_in_row else '-')
    notes = ['hidden row'] if row.hidden else []
    outcome = 'ready' if e.status == 'used' else e.reason
    lines.append(f'{e.source_row:>6}  {e.id[:13]:<14}{photo:<30}{outcome}'
                 + (f' [{"; ".join(notes)}]' if notes else ''))
  ready = sum(1 for e in entries if e.status == 'used')
  by_reason = collections.Counter(e.reason_code for e in entries if e.status != 'used')
  lines.append(f'{len(entries)} rows: {ready} ready for face detection, {len(entries) - ready} '
               'skipped' + (' (' + ', '.join(f'{k} {n}' for k, n in sorted(by_reason.items()))
                            + ')' if by_reason else '')
               + (f'; {table.blank_rows} blank rows ignored' if table.blank_rows else ''))
  return entries, '\n'.join(lines)
