"""The dbt project rendered as Airflow task groups by astronomer-cosmos.

Each dbt model becomes a task that runs ``dbt build --select <model>`` (the model and its data
tests; unit tests are left to CI, see :data:`TASK_FLAGS`); seeds are tasks too. ``select``
renders part of the project (e.g. ``["tag:staging"]``), so a DAG can put a gate between layers.
The project is parsed from ``dbt/target/manifest.json`` when it exists (made by ``dbt parse``
during set-up: fast DAG parsing), else with ``dbt ls``.
"""

from __future__ import annotations

from typing import Any

from ml import config

# Flags of every scheduled dbt task:
# - no manifest.json/run_results.json per task: nothing reads them (cosmos' lineage extraction
#   is off without the OpenLineage provider), and writing the ~1 MB manifest was a large share
#   of each task's time;
# - no adapter cache: a task builds one model, so listing every relation of every schema first
#   costs more than it saves (dbt looks up the model's own relation when it needs it);
# - no unit tests: their given/expect rows are fixed, so each scheduled build would only repeat
#   what CI proved (`make test` runs them in a whole-project `dbt build`, tests/dbt/); data tests
#   check the day's rows and run with their model. A selector, not `--exclude-resource-type`,
#   because `dbt seed` (the seed tasks) has no such option; and not dbt's environment variable,
#   because cosmos copies each task's environment into the running process for good.
TASK_FLAGS: tuple[str, ...] = ("--no-write-json", "--no-populate-cache", "--exclude", "test_type:unit")


def profile_config() -> Any:
    """dbt's profile for the tasks: on PostgreSQL, when the ``interestflow_warehouse`` Airflow
    Connection is defined, cosmos renders it from that connection when a task runs (the password
    never enters the DAG or its environment); otherwise ``dbt/profiles.yml`` with the location
    variables of :func:`ml.features.dbt.dbt_env`."""
    from cosmos import ProfileConfig

    from ml.features.dbt import dbt_env
    from ml.warehouse import WAREHOUSE_CONN_ID, Warehouse, airflow_warehouse_url

    from_airflow = airflow_warehouse_url()  # (one Connection lookup per DAG parse)
    if from_airflow and Warehouse(from_airflow).kind == "postgres":
        from cosmos.profiles import PostgresUserPasswordProfileMapping

        mapping = PostgresUserPasswordProfileMapping(
            conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": "public", "threads": 4}
        )
        return ProfileConfig(profile_name="interestflow", target_name="postgres", profile_mapping=mapping)
    return ProfileConfig(
        profile_name="interestflow",
        target_name=dbt_env()["DBT_TARGET"],
        profiles_yml_filepath=config.DBT_DIR / "profiles.yml",
    )


def dbt_task_group(
    group_id: str = "dbt", pool: str | None = None, select: list[str] | None = None, **kwargs: Any
) -> Any:
    """A cosmos ``DbtTaskGroup`` of the project (or of the ``select``-ed part), every task in ``pool``."""
    from cosmos import DbtTaskGroup, ExecutionConfig, ProjectConfig, RenderConfig
    from cosmos.constants import InvocationMode, LoadMode, TestBehavior

    from ml.features.dbt import dbt_env, dbt_executable

    manifest = config.DBT_DIR / "target" / "manifest.json"
    project = ProjectConfig(
        dbt_project_path=config.DBT_DIR,
        manifest_path=manifest if manifest.exists() else None,
        install_dbt_deps=False,
        env_vars=None,
    )
    profile = profile_config()
    render = RenderConfig(
        load_method=LoadMode.DBT_MANIFEST if manifest.exists() else LoadMode.DBT_LS,
        test_behavior=TestBehavior.BUILD,
        emit_datasets=False,
        enable_mock_profile=False,
        should_detach_multiple_parents_tests=True,
        select=list(select or []),
    )
    # dbt runs in the task's own process (dbtRunner): no new interpreter and dbt import per model,
    # which was most of each task's time; the callback closes the DuckDB file dbt-duckdb keeps open
    execution = ExecutionConfig(dbt_executable_path=dbt_executable(), invocation_mode=InvocationMode.DBT_RUNNER)
    # the worker's own environment supplies secrets (PGPASSWORD); only locations go in here
    env = {k: v for k, v in dbt_env().items() if k != "PGPASSWORD"}
    operator_args: dict[str, Any] = {
        "dbt_cmd_flags": list(TASK_FLAGS),
        "install_deps": False,
        "append_env": True,
        "env": env,
        "callback": "ml.features.dbt.release_duckdb",
    }
    if pool:
        operator_args["pool"] = pool
    return DbtTaskGroup(
        group_id=group_id,
        project_config=project,
        profile_config=profile,
        render_config=render,
        execution_config=execution,
        operator_args=operator_args,
        **kwargs,
    )
