"""Operations: health, structured logs, Kafka-visible offsets (see each module)."""
