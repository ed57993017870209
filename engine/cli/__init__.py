"""The ``aftercare`` command line: the application in ``engine.cli.app``, started by
``engine.cli.entry``. Importing one command's module (the container probe,
``engine.cli.health``) does not load the others."""
