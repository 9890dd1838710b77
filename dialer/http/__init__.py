"""The daemon's one HTTP server: control API, screen pop, metrics and health checks."""
