"""The built index on disk (chunks, vectors, lexical index, builds swapped in atomically) and the builder that writes it."""
