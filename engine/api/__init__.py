"""The gRPC API (aftercare.v1): servicers, request validation, server bootstrap."""
