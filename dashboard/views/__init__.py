"""One module per dashboard page; ``dashboard/app.py`` picks one from the sidebar."""
