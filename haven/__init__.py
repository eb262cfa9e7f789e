"""Clutter Haven analytics warehouse."""
