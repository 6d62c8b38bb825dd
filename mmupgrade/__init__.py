"""mmupgrade: upgrade a Mattermost server safely, with automatic rollback."""

__version__ = "0.1.0"
