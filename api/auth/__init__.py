"""Passwords, tokens and the principal a request acts as."""
