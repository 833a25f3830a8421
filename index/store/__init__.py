"""Storing the index: the contract every store keeps (interface.py), the files (files.py, ann.py) and PostgreSQL (postgres.py, database.py), and the builder that writes either."""
