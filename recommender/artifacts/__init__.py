"""Data only: the shipped knowledge base (sweep records and the meta-learner fitted on them).

A package so that wheels carry these files; see ``recommender/sweep_kb.py``.
"""
