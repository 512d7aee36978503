"""Data-quality gates: checks that stop bad data before training or serving."""
