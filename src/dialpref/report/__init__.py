"""One self-contained HTML page per run: tables, and plots embedded as PNG."""
