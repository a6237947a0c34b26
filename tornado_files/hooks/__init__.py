"""Webhooks (docs/deploying.md, Webhooks): configuration, the outbox's events, their delivery
loop and the synchronous ``upload.pre_create`` hook."""
