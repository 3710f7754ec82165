"""City web-service freshness monitor: real updates vs noise, staleness against regulation, audits."""

__version__ = "0.1.0"
