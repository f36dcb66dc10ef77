"""The pure-Python featurizer the compiled core replaced, kept as its oracle.

``query_predictor.core`` scans SQL and weighs TF-IDF terms in C (``_textscan.pyx``). These
modules keep the Python code that did it before (commits d829d09 and c2e793a), unchanged
but for what did not change with the compiled core, which they import from production (the
catalogue, the keyword sets, date parsing, ``as_text``): the regex tokenizer and Python
normalisation (``sql_tokens.py``), the Counter-based text features (``features.py``), the
TF-IDF weights (``tfidf.py``). ``tests/code/test_textscan.py`` asserts that both give the
same features, tables, terms (in order), template and weights, bit for bit. A change to a
feature's definition is made in both, or that test says where they part.
"""
