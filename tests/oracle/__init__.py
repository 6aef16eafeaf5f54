"""The frozen Python data path: the reference the C engine was written against (test-only)."""
