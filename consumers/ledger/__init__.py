"""The ledger consumer: applies command records to the wallet ledger exactly once.

The chain, per poll: `records.classify` (bytes to commands; poison to the DLQ), then
`apply.PartitionApplier` (one PostgreSQL transaction per partition: idempotency, the pure
ledger core, writes, outbox rows, and the offset compare-and-set that commits it all).
`app.LedgerConsumer` owns the Kafka consumer, assignment and retries.
"""
