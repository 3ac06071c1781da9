"""The application template: Compose files merged and interpolated the way `docker compose`
does, normalised to the long syntax every deploy target reads.

Pure domain logic (reads files, imports no docker/requests), so a team can review what will be
deployed (`template render`) and every target receives the same normalised model. This is the
one public entry; the modules behind it:

    values       Compose value syntaxes: durations, sizes, short ports, env files
    interpolate  $VAR, ${VAR:-default}, ${VAR:?message}, $$
    merge        the merge rules of `docker compose -f base -f overlay`, keeping file and line
    problems     every problem of a template collected, each with its file and line
    schema       the Compose file's shape (compose.schema.json): unknown keys, types, forms
    files        the files a template reads: inside its directory, bounded in size
    host_access  what a template may not do to the host unless it allows it
    normalise    the merged model in long syntax, its files read, its checks parsed
    order        start order from depends_on, cycles named
    model        Template, Check, TemplateError, redaction of secrets
    load         load(directory, environment, environ): the files found, read and put together
"""

from steps.runtime.masking import REDACTED
from steps.template.files import deploy_files_hash
from steps.template.interpolate import InterpolationError, interpolate
from steps.template.load import load, loads, overlay_environments
from steps.template.model import Check, Template, TemplateError
from steps.template.normalise import checks_from_rendered
from steps.template.order import dependency_order
from steps.template.problems import did_you_mean
from steps.template.values import parse_duration, parse_size

__all__ = [
    "REDACTED", "Check", "InterpolationError", "Template", "TemplateError",
    "checks_from_rendered", "dependency_order", "deploy_files_hash", "did_you_mean",
    "interpolate", "load", "loads",
    "overlay_environments", "parse_duration", "parse_size",
]
