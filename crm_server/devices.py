"""Devices as the admin sees them: what each reported, revoking one, and plugin reports.

A device tells the server its app version and how many mutations wait in its outbox
(headers of push and pull, :data:`crm_desktop.sync.protocol.APP_VERSION_HEADER` and
:data:`~crm_desktop.sync.protocol.PENDING_HEADER`); the server counts what it rejected
and remembers the cursor of the last pull, which is the oldest change still in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crm_server.auth import now
from crm_server.errors import ServerError
from crm_server.models import Device, DevicePlugin, DeviceSession, RefreshToken, TeamMember, Team, User


@dataclass(frozen=True)
class DeviceRow:
    id: str
    name: str
    username: str
    app_version: str | None
    protocol_version: str | None
    last_sync_at: datetime | None
    pending_reported: int | None
    rejected_total: int
    signed_in: bool
    last_cursor: str | None


@dataclass(frozen=True)
class DevicePluginRow:
    device_id: str
    device_name: str
    username: str
    name: str
    version: str | None
    state: str
    reason: str | None
    reported_at: datetime


def record_contact(session: Session, device_id: str, *, app_version: str | None, protocol_version: str | None,
                   pending: str | None = None, rejected: int = 0, cursor: str | None = None) -> None:
    """Remember what a device said on push or pull (in the caller's write transaction)."""
    values: dict = {"last_sync_at": now(), "protocol_version": (protocol_version or "")[:10] or None}
    if app_version:
        values["app_version"] = app_version[:50]
    if pending is not None and pending.isascii() and pending.isdigit():  # "²".isdigit() too, but int() refuses it
        values["pending_reported"] = min(int(pending), 2**31 - 1)
    if rejected:
        values["rejected_total"] = Device.rejected_total + rejected
    if cursor is not None:
        values["last_cursor"] = cursor[:64]
    session.execute(update(Device).where(Device.id == device_id).values(**values))


def _team_filter(query, teams: set[str] | None):
    if teams is None:
        return query
    members = (select(TeamMember.user_id).join(Team, Team.id == TeamMember.team_id)
               .where(Team.name.in_(sorted(teams))))
    return query.where(User.id.in_(members))


def list_devices(session: Session, teams: set[str] | None = None) -> list[DeviceRow]:
    live = select(DeviceSession.device_id).where(DeviceSession.revoked_at.is_(None))
    query = _team_filter(select(Device, User.username).join(User, User.id == Device.user_id), teams)
    live_ids = set(session.scalars(live))
    rows = session.execute(query.order_by(User.username, Device.name, Device.id))
    return [DeviceRow(d.id, d.name, username, d.app_version, d.protocol_version, d.last_sync_at, d.pending_reported,
                      d.rejected_total or 0, d.id in live_ids, d.last_cursor) for d, username in rows]


def revoke_device(session: Session, device_id: str, reason: str = "revoked by an admin") -> str:
    """Sign the device out: its sessions end, so its access and refresh tokens stop at once."""
    device = session.get(Device, device_id)
    if device is None:
        raise ServerError(f"no device {device_id!r}: see 'crm-server device list'")
    ended = session.execute(update(DeviceSession).where(DeviceSession.device_id == device_id,
                                                        DeviceSession.revoked_at.is_(None))
                            .values(revoked_at=now(), revoked_reason=reason)).rowcount
    if not ended:
        raise ServerError(f"device {device.name or device_id!r} is not signed in")
    sessions = select(DeviceSession.id).where(DeviceSession.device_id == device_id)
    session.execute(delete(RefreshToken).where(RefreshToken.session_id.in_(sessions)))
    return device.name or device_id


def record_plugin_report(session: Session, device_id: str, items) -> int:
    """Replace what the device reported about plugins with ``items`` (PluginReportItem)."""
    session.execute(delete(DevicePlugin).where(DevicePlugin.device_id == device_id))
    seen = set()
    for item in items:
        if item.name in seen:
            continue
        seen.add(item.name)
        session.add(DevicePlugin(device_id=device_id, name=item.name, version=item.version, state=str(item.state),
                                 reason=item.reason, reported_at=now()))
    return len(seen)


def plugin_reports(session: Session, teams: set[str] | None = None) -> list[DevicePluginRow]:
    query = _team_filter(select(DevicePlugin, Device.name, User.username)
                         .join(Device, Device.id == DevicePlugin.device_id)
                         .join(User, User.id == Device.user_id), teams)
    rows = session.execute(query.order_by(DevicePlugin.name, User.username, Device.name))
    return [DevicePluginRow(p.device_id, name, username, p.name, p.version, p.state, p.reason, p.reported_at)
            for p, name, username in rows]
