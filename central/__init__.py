"""The city server: sync endpoint, routing, fleet dashboard."""
