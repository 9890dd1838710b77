"""Customers calling a campaign's number back: recognition, routing over FastAGI, records."""
