"""Reading articles: files to cleaned documents, sentences and chunks, and the build cache."""
