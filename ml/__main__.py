"""``python -m ml …`` — the Interestflow command line."""

from ml.cli import main

raise SystemExit(main())
