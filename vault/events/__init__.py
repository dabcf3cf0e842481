"""Events to downstream tools: a durable outbox and signed webhooks (Standard Webhooks)."""
