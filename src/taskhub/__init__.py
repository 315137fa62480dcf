"""taskhub: task management (v1) and commerce (v2) behind one FastAPI gateway."""

__version__ = "0.1.0"
