"""The relay: publishes the outbox to Kafka exactly once (see `app.Relay`)."""
