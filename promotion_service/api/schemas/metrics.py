"""DORA metrics: the query and the four keys per project and environment."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from .base import ENV_NAME, Filters, UtcDateTime


class DoraFilters(Filters):
    """Which projects and environments, over how many days up to now."""

    project = fields.Str(validate=validate.Length(max=255),
                         metadata={"description": "a part of the project path"})
    environment = fields.Str(validate=ENV_NAME)
    days = fields.Int(load_default=30, validate=validate.Range(1, 366))


class DoraOut(Schema):
    """The four keys of one project's environment over the window."""

    project = fields.Str()
    environment = fields.Str()
    window_start = UtcDateTime(attribute="start")
    window_end = UtcDateTime(attribute="end")
    deployments = fields.Int(attribute="keys.deployments",
                             metadata={"description": "releases that went live"})
    deployments_per_day = fields.Float(attribute="keys.deployments_per_day")
    per_day = fields.List(fields.Int(), attribute="keys.per_day",
                          metadata={"description": "releases that went live each day, oldest "
                                                   "first"})
    lead_time_seconds = fields.Float(attribute="keys.lead_time_seconds", allow_none=True,
                                     metadata={"description": "median, commit time to verified"})
    failed_deployments = fields.Int(attribute="keys.failed_deployments")
    change_failure_rate = fields.Float(attribute="keys.change_failure_rate", allow_none=True)
    restores = fields.Int(attribute="keys.restores")
    time_to_restore_seconds = fields.Float(
        attribute="keys.time_to_restore_seconds", allow_none=True,
        metadata={"description": "median, failure or rollback to the next verified release"})
