"""``ragstate serve``: the pipelines' queries over HTTP (FastAPI on uvicorn; the ``serve`` extra).

``app.create_app(project, options)`` builds the ASGI application, ``app.serve`` runs it;
``ragstate`` imports neither FastAPI nor uvicorn until one of them is called.
"""
