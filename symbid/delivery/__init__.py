"""Delivery: a run's output routed to its job's channels, each attempt leaving a receipt.

``base`` holds the shared vocabulary (Payload, Target, Receipt, the HTTP POST helper);
one module per channel (``stdout``, ``log_file``, ``webhook``, ``slack``, ``email``,
``custom``) sends; ``router`` picks the channel, checks a job's channels when it is
defined, and never raises. docs/delivery.md describes the channels and their contract.

This module imports nothing, so a channel importing ``symbid.delivery.base`` never
pulls in the router above it.
"""
