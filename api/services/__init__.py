"""The rules of the domain: plain async functions with keyword-only arguments, no GraphQL."""
