"""Alerts: always logged, and posted as Slack-compatible JSON to HAVEN_ALERT_WEBHOOK when set."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx

logger = logging.getLogger("haven.alerts")


@dataclass(frozen=True)
class Alert:
    kind: str
    """failed_run, freshness or reconciliation."""
    message: str

    def payload(self) -> dict[str, object]:
        """Slack's incoming-webhook format (also understood by Mattermost, Teams workflows, ...)."""
        title = {
            "failed_run": "Run failed",
            "freshness": "Source freshness",
            "reconciliation": "Reconciliation",
        }
        return {
            "text": f":rotating_light: Clutter Haven {title.get(self.kind, self.kind)}: {self.message}",
            "blocks": [
                {
                    "type": "header",
                    "text": {
                        "type": "plain_text",
                        "text": f"Clutter Haven: {title.get(self.kind, self.kind)}",
                    },
                },
                {"type": "section", "text": {"type": "mrkdwn", "text": self.message}},
            ],
        }


def send(alert: Alert, webhook: str | None, *, attempts: int = 3, timeout: float = 5.0) -> bool:
    """Log the alert; post it when a webhook is configured. Returns whether it was delivered.

    Retries with exponential backoff on network errors and 5xx answers; never raises, because a
    broken alert channel must not fail the run it reports on.
    """
    logger.warning("alert %s: %s", alert.kind, alert.message)
    if not webhook:
        return False
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.post(webhook, json=alert.payload(), timeout=timeout)
            if response.status_code < 500:
                if response.is_success:
                    return True
                logger.error("alert webhook refused the alert (HTTP %s)", response.status_code)
                return False
        except httpx.HTTPError as error:
            logger.error("alert webhook attempt %s failed: %s", attempt, error)
        if attempt < attempts:
            time.sleep(0.2 * 2 ** (attempt - 1))
    return False
