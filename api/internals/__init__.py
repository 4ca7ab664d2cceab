"""The private parts of our libraries that the app relies on, one module per library, so that an
upgrade that changes one breaks here, and tests/test_internals.py says which."""
