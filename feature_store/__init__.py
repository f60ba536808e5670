"""The Feast repository of the Reference Footage Library (entities, feature views, Milvus Lite
online store) and its ingestion and retrieval.

Part of the `dubops` distribution (mapped as `dubops.feature_store`); filled by later issues.
"""
