"""Read-only data access for the Interestflow page in the Airflow UI (``plugins/interestflow_ui``).

``reader`` opens a read session that never blocks the warehouse's single writer (a snapshot copy
of the DuckDB file, or a plain read-only PostgreSQL transaction); ``views`` turns the registry,
quality, exploration, serving and profile tables into JSON-ready dicts, reading every optional
table defensively; ``errors`` holds the exceptions the endpoints map to 400/404/503; ``browser``
drives headless Chromium for the page's browser test and screenshots.

Kept import-light (no pandas here): the plugin imports ``ml.ui.errors`` at Airflow start-up.
"""
