"""Chunk-level sync with a remote: negotiation, packs in flight, push, fetch, pull, clone."""
