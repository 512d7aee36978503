"""Behaviour patterns over the feature marts: k-means user segments, association rules between
categories and the Markov next-category model. Each writes a table of the ``ml`` schema that the
recommenders and the explorer read (``ml.user_segments``, ``ml.category_rules``,
``ml.category_transitions``)."""
