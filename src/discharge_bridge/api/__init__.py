"""The REST API (`/api/v1`), the webhook and /metrics: each router translates HTTP to a service call and back."""
