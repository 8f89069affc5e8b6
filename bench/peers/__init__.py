"""Peers that symbid is measured against in `make bench` (each in its own environment)."""
