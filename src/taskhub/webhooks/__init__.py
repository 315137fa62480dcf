"""Webhooks: endpoints that receive the events of design §8, signed (Standard Webhooks)."""
