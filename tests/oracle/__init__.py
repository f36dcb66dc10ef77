"""The pure-Python featurizer of commit d829d09, kept as the oracle of the compiled one.

``query_predictor.core`` now scans SQL and weighs TF-IDF terms in C (``_textscan.pyx``).
These modules are the Python code it replaced, unchanged but for their import path: regex
tokenizer, Counter-based features, Python normalisation, TF-IDF weights (``tfidf.py``, of
commit c2e793a). ``tests/code/test_textscan.py`` asserts that both give the
same features, tables, terms (in order) and template on hand-written, generated and fuzzed
SQL. A change to a feature's definition is made in both, or this test says where they part.
"""
