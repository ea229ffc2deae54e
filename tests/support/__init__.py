"""Helpers shared by the test suites (real external tools wrapped for tests)."""
