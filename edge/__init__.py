"""The commune node web app (Starlette + Jinja2 + htmx)."""
