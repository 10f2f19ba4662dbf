"""deckhand's Kubernetes test environment: a real cluster built from source.

``scripts/k8s-testenv`` is the command line; ``tests/k8s/conftest.py`` uses
:mod:`k8s_testenv.cluster` as a pytest session fixture.
"""
