"""The functions Airflow tasks call, one module per DAG family; DAG files only wire these.

Each function is idempotent for a given ``run_id``: re-running a DAG run gives the same rows.
"""
