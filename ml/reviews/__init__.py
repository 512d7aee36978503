"""Reviews as a signal: the sentiment of each review's text, learned from the shop's own ratings.

``models`` holds a scikit-learn baseline (TF-IDF + logistic regression) and MiniLM fine-tuned
with transformers, both trained with the ratings as weak labels (``labels``); ``score`` writes
``ml.review_sentiment`` (one row per review) for the marts, audiences and the UI.
"""
