"""What the daemon asks of a PBX (`protocol.Pbx`) and the PBXes that answer it."""
