"""A tiny Django project for the middleware tests: settings, one model, URLs and views.

Nothing here configures Django on import; `setup.configure()` does, and only the Django tests
call it, so the rest of the suite never runs Django's setup.
"""
