"""Contract test suites every backend must pass (import them in a backend's tests)."""
