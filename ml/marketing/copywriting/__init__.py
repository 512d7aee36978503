"""Marketing copy grounded in the catalogue: a causal language model writes variants per
audience and campaign (``lm``), a gate checks every product, price, brand, category and
discount they name against the catalogue and the campaign (``gate``), and what passes, or a
template when nothing does, is published per audience (``variants``)."""
