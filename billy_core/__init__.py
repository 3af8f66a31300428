"""billy: a vertical billing service over Balance.

Services send commands to Kafka; billy applies them to a wallet ledger in PostgreSQL
exactly once and publishes results, the applied-services log and wallet snapshots.
"""
