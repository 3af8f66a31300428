"""Consumption reports, acts and reconciliation: the pure rules (`months`, `reconcile`),
their tables (`store`) and their output records (`wire`). The jobs that call Balance live in
`jobs/` (consumption, acts); this package never calls Balance."""
