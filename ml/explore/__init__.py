"""Explore/exploit over slates of k slots with two-level arms (interest tags, then items within a
tag): candidate contexts (``candidates``), policies (``policies``), the slot-filling sampler that
produces propensities (``slate``), feedback joins and statistics (``feedback``) and warehouse I/O
(``store``). ``ml.explore.defaults`` is import-light so DAG files may read it."""
