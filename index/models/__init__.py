"""Models trained here: the reading model (reader/) and the script that reproduces it (train_reader.py)."""
