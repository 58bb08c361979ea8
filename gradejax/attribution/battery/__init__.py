"""The attribution battery: every method's maps and the checks on them, as a typed result.

``config`` (the report's choices: :class:`Options` flags -> frozen :class:`Config`, one
sub-config per method and per check), ``maps`` (shown images, held-out fold, multi-process
split), ``checks`` (sanity, faithfulness and ROAD, localisation, causal, ranking), ``truth``
(the demo's cue masks), ``result`` (the dataclasses), ``run`` (all of it). The report
(gradejax.report.attribution_report) renders a :class:`Result`; it computes nothing.
"""
from gradejax.attribution.battery.config import (DEFAULT_METHODS, PRECISIONS, Config,
                                                 Options)
from gradejax.attribution.battery.maps import Inputs, default_layer, heatmap_fn, predicted
from gradejax.attribution.battery import relies
from gradejax.attribution.battery.result import Result
from gradejax.attribution.battery.run import run, select
from gradejax.attribution.battery.truth import cue_masks, localisation_images
