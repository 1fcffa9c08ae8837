"""The web adapter: a dashboard served by the bot's own HTTP server (see app.py)."""
