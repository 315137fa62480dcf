"""Event transport: the outbox, the relay and the stream consumer. No domain logic here."""
