"""Polling upstream feeds: fetch (HTTP), parse (bytes to typed data), schedule (when next)."""
