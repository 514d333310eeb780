"""Webhooks: URLs that receive the outbox events, signed with a per-webhook secret."""
