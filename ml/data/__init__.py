"""Public data sets for benchmarks: ``python -m ml data fetch NAME``. Each module here defines
``DATASETS = {name: fetch}`` where ``fetch(path: Path | None, out: Path) -> Path`` returns the
folder holding the data (read from ``path`` when given; never from a hub at run time)."""
