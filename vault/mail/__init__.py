"""Mail to the customer: a durable, encrypted outbox, delivered over SMTP or to the mail drop."""
