"""billy's benchmarks: end-to-end throughput, latency at a fixed offered load, memory, and
batched ledger vs a one-transaction-per-command loop. Run with `python -m bench.run [--quick]`;
see bench/README.md. Never imported by billy or by the tests."""
