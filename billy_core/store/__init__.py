"""PostgreSQL: table definitions, migrations, connections and the ledger's batch writer."""
