"""What the daemon's neighbours may see of it and ask of it, and nothing more.

The HTTP app, the metrics and the campaign watcher are handed these narrow
interfaces (`dialer.control.daemon_view`), never the daemon itself: only
`dialer.daemon.server` changes the daemon's config, its agent board and its
runners. Operators' campaign states live here too (`campaign_states`).
"""
