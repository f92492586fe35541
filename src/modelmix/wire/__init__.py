"""Wire formats, one package each: both directions of one vendor API (client-side codec and,
where an upstream speaks it, the provider side)."""
