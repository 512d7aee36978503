"""DAG tests use the shared fixtures `airflow_runtime` and `pipeline_runs` from tests/conftest.py."""
