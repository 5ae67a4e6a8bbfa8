"""Chunks and nodes in packs on a store: writing packs, reading and verifying objects, chunk lists."""
