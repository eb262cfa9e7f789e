"""dlt sources and pipelines: one folder per source (``app/``), the pipeline that runs them."""
