"""Pika!: the DJ's set, live on every dancer's phone."""

__version__ = "0.4.0"
