"""Glue between ``ml`` and Airflow: the cosmos task group, error mapping, local runtime."""
