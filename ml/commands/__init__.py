"""Sub-commands of ``python -m ml`` (one module per command group)."""
