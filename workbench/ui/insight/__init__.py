"""Teaching and insight views: boundary, evaluation, predict, model probe, autograd graph, doctor."""
