"""Embedded study files (``<name>.yaml``), runnable by name: ``musiclens run <name>``."""
