"""Data-quality gates: Great Expectations suites (``suites/*.yml``) that stop bad data before
features, training or serving. See :mod:`ml.quality.gates` and :mod:`ml.quality.prepublish`."""
