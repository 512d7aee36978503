"""The dbt feature layer: running the project and reading its marts."""
