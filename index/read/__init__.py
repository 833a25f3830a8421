"""Reading passages: re-ranking by their best excerpt, the reading model, answer types, excerpts, answers, follow-ups and the question check."""
