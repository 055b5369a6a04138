"""PostgreSQL through aiopg: every table of migrations/ has its one adapter here."""
