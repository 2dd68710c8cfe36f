"""The playground at /ui: a page in the browser that calls the API's own routes.

app.py serves the page (static/), its configuration and the login form; auth.py is how a browser
passes the token guard; modes.py holds the toy datasets' modes the page draws vector samples over.
Importing this package imports nothing heavy (middleware.py imports auth.py at start-up).
"""
