"""Reading passages: the reading model, answer types, excerpts, answers, follow-ups and the question check."""
