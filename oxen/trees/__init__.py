"""Merkle trees and the commit graph, over the object store: read, diff, rebuild, walk."""
