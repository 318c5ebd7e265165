"""A SQLMesh notification target that reports SQLMesh's events to Herald.

Copy this file next to your project's ``config.py`` and list the target there::

    from herald_target import HeraldNotificationTarget

    config = Config(
        ...,
        notification_targets=[
            HeraldNotificationTarget(notify_on=["apply_failure", "run_failure", "audit_failure"]),
        ],
    )

with ``HERALD_URL`` (e.g. ``http://herald.internal:8080``) and ``HERALD_TOKEN`` (an owner's API
token from ``herald tokens create sqlmesh``) in the environment, or ``url=`` / ``token=``.

Each of SQLMesh's ten events (apply_start, apply_end, apply_failure, run_start, run_end,
run_failure, audit_failure, migration_start, migration_end, migration_failure) becomes a
``POST {url}/api/v1/events`` of Herald's catalog event of the same name: the environment, plan
id, audit, model and model owner as labels, the error (and an audit's query and row count) as
data. Herald then routes it to its targets and users (DESIGN §12).

Only the standard library is used, so the file adds no dependency to a project. It never raises
into SQLMesh: a post that fails is logged as a warning by SQLMesh's logger, with Herald's reason.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import typing as t
import urllib.error
import urllib.request

from pydantic import Field, SecretStr

from sqlmesh.core.notification_target import GenericNotificationTarget

logger = logging.getLogger("sqlmesh.core.notification_target")

#: Herald's answer is read for its `error` sentence up to this many bytes.
_MAX_ANSWER = 64 * 1024


def _env(name: str) -> t.Callable[[], t.Optional[str]]:
    return lambda: os.environ.get(name) or None


def _secret_env(name: str) -> t.Callable[[], t.Optional[SecretStr]]:
    return lambda: SecretStr(os.environ[name]) if os.environ.get(name) else None


class HeraldNotificationTarget(GenericNotificationTarget):
    """Posts the events in ``notify_on`` to Herald's ``POST /api/v1/events``."""

    url: t.Optional[str] = Field(default_factory=_env("HERALD_URL"))
    """Herald's base URL, e.g. ``http://herald:8080`` (default: env ``HERALD_URL``)."""
    token: t.Optional[SecretStr] = Field(default_factory=_secret_env("HERALD_TOKEN"))
    """An API token of a Herald owner (default: env ``HERALD_TOKEN``); shown as ``**********``."""
    users: t.FrozenSet[str] = frozenset()
    """Herald usernames notified besides Herald's targets for the event (default: none)."""
    actor: t.Optional[str] = None
    """A Herald username: only that user's targets are notified (SQLMesh's ``username`` rule)."""
    environment: t.Optional[str] = None
    """The ``environment`` label of ``audit_failure``, which SQLMesh does not pass to targets:
    ``"prod"`` in a production config lets the model owner's Herald targets hear of it."""
    timeout: float = 10.0
    """Seconds to wait for Herald before giving up on one event."""

    # `is_configured` stays SQLMesh's default (True): without a URL or token each event logs a
    # warning saying which is missing, where SQLMesh would drop the target without a word.

    # ---- SQLMesh's events ------------------------------------------------------------------

    def notify_apply_start(
        self, environment: str, plan_id: str, *args: t.Any, **kwargs: t.Any
    ) -> None:
        self._report("apply_start", _plan_labels(environment, plan_id))

    def notify_apply_end(
        self, environment: str, plan_id: str, *args: t.Any, **kwargs: t.Any
    ) -> None:
        self._report("apply_end", _plan_labels(environment, plan_id))

    def notify_apply_failure(
        self, environment: str, plan_id: str, exc: str, *args: t.Any, **kwargs: t.Any
    ) -> None:
        self._report("apply_failure", _plan_labels(environment, plan_id), {"error": exc})

    def notify_run_start(self, environment: str, *args: t.Any, **kwargs: t.Any) -> None:
        self._report("run_start", {"environment": environment, "initiator": _initiator()})

    def notify_run_end(self, environment: str, *args: t.Any, **kwargs: t.Any) -> None:
        self._report("run_end", {"environment": environment, "initiator": _initiator()})

    def notify_run_failure(self, exc: str, *args: t.Any, **kwargs: t.Any) -> None:
        self._report("run_failure", {"initiator": _initiator()}, {"error": exc})

    def notify_audit_failure(self, audit_error: t.Any, *args: t.Any, **kwargs: t.Any) -> None:
        model = getattr(audit_error, "model", None)
        labels = {
            "audit": getattr(audit_error, "audit_name", None),
            "environment": self.environment,
            "model": getattr(audit_error, "model_name", None),
            "owner": getattr(model, "owner", None),
        }
        data: t.Dict[str, t.Any] = {"error": str(audit_error)}
        count = getattr(audit_error, "count", None)
        if isinstance(count, int):
            data["count"] = count
        try:
            data["sql"] = audit_error.sql(pretty=True)
        except Exception:  # noqa: BLE001 - the query is a detail; the event still goes
            pass
        self._report("audit_failure", labels, data)

    def notify_migration_start(self, *args: t.Any, **kwargs: t.Any) -> None:
        self._report("migration_start", {"initiator": _initiator()})

    def notify_migration_end(self, *args: t.Any, **kwargs: t.Any) -> None:
        self._report("migration_end", {"initiator": _initiator()})

    def notify_migration_failure(self, exc: str, *args: t.Any, **kwargs: t.Any) -> None:
        self._report("migration_failure", {"initiator": _initiator()}, {"error": exc})

    # ---- posting -----------------------------------------------------------------------------

    def _report(
        self,
        event: str,
        labels: t.Dict[str, t.Any],
        data: t.Optional[t.Dict[str, t.Any]] = None,
    ) -> None:
        """Posts one event; logs instead of raising, whatever goes wrong."""
        try:
            self._post(event, labels, data)
        except Exception as e:  # noqa: BLE001 - SQLMesh's run must never fail for a notification
            logger.warning("Herald: could not report %s: %s", event, e)

    def _post(
        self,
        event: str,
        labels: t.Dict[str, t.Any],
        data: t.Optional[t.Dict[str, t.Any]],
    ) -> None:
        if not self.url:
            logger.warning(
                "Herald: not reporting %s: set HERALD_URL (or url=) to Herald's address", event
            )
            return
        if not self.token:
            logger.warning(
                "Herald: not reporting %s: set HERALD_TOKEN (or token=) to an owner's API token "
                "(`herald tokens create sqlmesh`)",
                event,
            )
            return
        body: t.Dict[str, t.Any] = {
            "event": event,
            "labels": {k: str(v) for k, v in labels.items() if v not in (None, "")},
        }
        if data:
            body["data"] = data
        if self.users:
            body["users"] = sorted(self.users)
        if self.actor:
            body["actor"] = self.actor
        request = urllib.request.Request(
            self.url.rstrip("/") + "/api/v1/events",
            data=json.dumps(body, default=str).encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.token.get_secret_value()}",
                "User-Agent": "herald-sqlmesh-target",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read(_MAX_ANSWER)
        except urllib.error.HTTPError as e:
            logger.warning(
                "Herald: could not report %s: HTTP %s: %s", event, e.code, _reason(e)
            )
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            logger.warning(
                "Herald: could not report %s: %s is unreachable (%s)", event, self.url, reason
            )


def _reason(error: urllib.error.HTTPError) -> str:
    """Herald's `{"error": "…"}` sentence, else the HTTP reason."""
    try:
        answer = json.loads(error.read(_MAX_ANSWER).decode("utf-8", "replace"))
        if isinstance(answer, dict) and isinstance(answer.get("error"), str):
            return answer["error"]
    except Exception:  # noqa: BLE001 - any body at all: fall back to the status line
        pass
    return str(error.reason)


def _plan_labels(environment: str, plan_id: str) -> t.Dict[str, t.Any]:
    return {"environment": environment, "plan_id": plan_id, "initiator": _initiator()}


def _initiator() -> t.Optional[str]:
    """Who runs SQLMesh here: the OS user, when it can be told."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return None
