"""Finding passages: the query, tokens, dense and lexical retrieval, fusion, relevance and time words."""
