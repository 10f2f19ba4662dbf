"""HTTP adapters: parse and authorise the request, call a service, shape the response."""
