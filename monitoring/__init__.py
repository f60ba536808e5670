"""Prometheus metrics, drift detectors, alert rules and Grafana dashboards for the serving
endpoints.

Part of the `dubops` distribution (mapped as `dubops.monitoring`); filled by later issues.
"""
