"""The OpenAI-compatible API: request models, validation, responses, streaming, routes, OpenAPI document."""
