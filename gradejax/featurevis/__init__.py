"""Feature visualisation: regularised activation maximisation, lucid-style.

One idea per module: ``objectives`` (what to maximise), ``param`` (how the image is
represented), ``transform`` (robustness jitter), ``regularisers`` (priors), ``render`` (the
optimisation, one compiled ``lax.scan`` over steps, batched over units and sharded over
devices), ``inversion`` (caricature, feature inversion), ``dataset_examples`` (top-k real images),
the page is ``gradejax.report.featurevis_page``. The CLI is ``python -m gradejax.featurevis``.
"""
