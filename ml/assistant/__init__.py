"""The shopping assistant: a shopper's question answered with items from the catalogue.

``query`` turns the question into hard constraints (price bounds, colour, brand, category,
style) and free text; ``retrieval`` ranks items for the free text (BM25 over the catalogue text,
or MiniLM sentence embeddings) and personalises with the user's history; ``index`` keeps the item
embeddings current in the warehouse (``ml.item_embeddings``); ``service`` answers a question
from the warehouse with one grounded sentence per item.
"""
