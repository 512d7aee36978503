"""Interest tags: item taggers (scikit-learn baselines, a fine-tuned transformer, zero-shot by
tag description), user interest profiles over tags, and trustworthy daily backfills.

Import-light on purpose: DAG files import :mod:`ml.tagging.defaults`; heavy modules (torch,
transformers, scikit-learn) are imported by the submodules that need them.
"""
