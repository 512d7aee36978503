"""The Interestflow page in the Airflow UI: a FastAPI app (``app``), Airflow auth (``auth``) and the
page's static files (``static/``: HTML, a small SVG chart library, the page script, CSS)."""
