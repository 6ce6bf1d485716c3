"""Server-rendered pages for coordinators, bed managers and hospital IT (Jinja2, htmx; no build step).

Pages call services and repositories, never SQL. Each area is a module with its own router and its own
translation catalog (``locale/<lang>/LC_MESSAGES/<area>.po``), merged at start-up.
"""
