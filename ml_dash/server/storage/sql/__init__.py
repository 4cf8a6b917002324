"""The SQL core SQLite and PostgreSQL share: ``protocol`` (queries as generators, their drivers, the migration
runner), ``storage`` (``SQLStorage``), ``metrics`` (the metric writers' shared policy)."""
