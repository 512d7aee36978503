"""Benchmarks: ``python -m ml bench NAME``. Each module here that defines ``NAME``,
``add_arguments(parser)`` and ``run(args) -> int`` becomes a sub-command. Benchmarks print a
table and write JSON; speed and memory targets live here, not in timed unit tests."""
