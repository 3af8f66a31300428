"""Kafka plumbing: client configurations, topic names and creation, the dead-letter queue."""
