"""Events for other services: the outbox, webhooks deliver it, GET /api/v1/events streams it."""
