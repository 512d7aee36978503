"""``python -m ml …`` — the Interestflow command line."""

import gc

from ml.cli import main

code = main()
# The interpreter's shutdown runs full garbage collections while it clears modules; after a
# command that ran DAGs in this process (``demo``, ``bench loop``) each one rescans the million
# objects Airflow, TensorFlow and torch left: ~6 s of the tiny demo. Frozen objects are not
# rescanned; they are freed with the process all the same.
gc.freeze()
raise SystemExit(code)
