"""Built-in notifications: grouped change reports delivered through an outbox, one module per channel."""
