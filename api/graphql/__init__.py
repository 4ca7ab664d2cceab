"""The GraphQL surface: Strawberry types, inputs, payloads and the @auth directive."""
