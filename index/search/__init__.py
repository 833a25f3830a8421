"""Finding passages: the query, tokens, dense and lexical retrieval, fusion, re-ranking, relevance and time words."""
