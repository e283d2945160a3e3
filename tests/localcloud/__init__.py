"""The local cloud: see cloud.py."""
