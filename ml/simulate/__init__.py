"""The interactive shop simulator (``environment``) and the day-by-day policy runner (``runner``)."""
