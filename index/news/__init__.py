"""The news desk: feeds, fetching pages and refreshing the corpus."""
