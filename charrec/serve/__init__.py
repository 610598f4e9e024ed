"""`charrec serve`: the HTTP API and the drawing page, a thin layer over `charrec.predict` (as
`charrec.cli` is over the library): `reader` is the one seam to the predict library, `app` the
Starlette application, `static/` the page's own files (nothing is fetched from elsewhere)."""
