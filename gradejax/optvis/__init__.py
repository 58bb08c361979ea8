"""Feature visualisation: regularised activation maximisation, lucid-style (lucid's ``optvis``).

One idea per module: ``objectives`` (what to maximise), ``param`` (how the image is
represented), ``transform`` (robustness jitter), ``regularisers`` (priors), ``render`` (the
optimisation, one compiled ``lax.scan`` over steps, batched over units and sharded over
devices), ``inversion`` (caricature, feature accentuation, feature inversion),
``dataset_examples`` (top-k real images). The page is ``gradejax.report.featurevis_page``;
the command ``python -m gradejax.featurevis`` (gradejax/featurevis.py).
"""
